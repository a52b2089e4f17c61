import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecompress import codec, entropy, models, wavelet
from aecompress.entropy import BUCKETS, SYMBOLS, ContextTables


@pytest.fixture(scope="module")
def tables() -> ContextTables:
    return ContextTables.load(models.get().path("tables"))


def bands_of(rgb: np.ndarray, step: float) -> tuple[list, int]:
    _, ints = codec.roundtrip(rgb.transpose(2, 0, 1), step)
    return ints, wavelet.levels_for(*rgb.shape[:2])


def same(a: list, b: list) -> bool:
    return all(
        np.array_equal(a[c][0], b[c][0])
        and all(
            np.array_equal(x, y) for ta, tb in zip(a[c][1:], b[c][1:], strict=True) for x, y in zip(ta, tb, strict=True)
        )
        for c in range(3)
    )


def test_tables_are_valid_integer_distributions(tables):
    assert tables.counts.min() >= 1, "every symbol, the escape included, must stay codable"
    assert tables.counts.shape[-2:] == (BUCKETS, SYMBOLS)
    assert (np.diff(tables.thresholds, axis=-1) >= 0).all() and (tables.thresholds[..., 0] >= 1).all()
    assert (np.diff(tables.steps) < 0).all(), "levels go from coarse to fine steps"


def test_zero_activity_is_nearly_free(tables):
    """All-zero areas of a smooth image must cost a small fraction of a bit per coefficient."""
    p0 = tables.counts[..., 0, 0].astype(float) / tables.counts[..., 0, :].sum(axis=-1)
    assert np.median(-np.log2(p0)) < 0.1


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (5, 1), (17, 33), (64, 48), (65, 97)])
@pytest.mark.parametrize("level", [0, -1])
def test_round_trip_any_size(tables, shape, level):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    lv = level % tables.levels
    ints, levels = bands_of(rgb, tables.steps[lv])
    data = entropy.encode(ints, levels, tables, lv)
    back = entropy.decode(data, wavelet.band_shapes(*shape, levels), levels, tables, lv)
    assert same(back, ints)


def test_large_values_escape_losslessly(tables):
    """Values far beyond the tables (a pathological input) go through the escape code."""
    levels = 2
    shapes = wavelet.band_shapes(9, 10, levels)
    rng = np.random.default_rng(1)
    ints = [
        [rng.integers(-(1 << 20), 1 << 20, shapes[0]).astype(np.int32)]
        + [tuple(rng.integers(-(1 << 20), 1 << 20, s).astype(np.int32) for s in t) for t in shapes[1:]]
        for _ in range(3)
    ]
    data = entropy.encode(ints, levels, tables, 0)
    assert same(entropy.decode(data, shapes, levels, tables, 0), ints)


def test_contexts_are_used(tables):
    """A coefficient beside busy neighbours must cost more as a zero and less as a large value
    than the same coefficient in a quiet area, or the tables are not doing their job."""
    lv = tables.levels // 2
    for cls in range(0, entropy.CLASSES, 7):
        quiet, busy = tables.counts[lv, cls, 1, 0].astype(float), tables.counts[lv, cls, 1, -1].astype(float)
        quiet, busy = quiet / quiet.sum(), busy / busy.sum()
        mean = np.arange(SYMBOLS)
        assert quiet[0] > busy[0] and quiet @ mean < busy @ mean


def test_analyse_sees_what_the_coder_codes(tables):
    """Fitting (training/entropy_model.py) uses analyse(); its symbols are the coded ones."""
    rgb = np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    ints, levels = bands_of(rgb, 8.0)
    n = sum(s.size for _, _, _, s, _ in entropy.analyse(ints, levels))
    assert n == sum(b.size for c in range(3) for t in ints[c][1:] for b in t)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.integers(1, 40), st.integers(1, 40))
def test_garbage_payload_raises_entropy_error_or_decodes(tables, data, h, w):
    levels = wavelet.levels_for(h, w)
    try:
        entropy.decode(data, wavelet.band_shapes(h, w, levels), levels, tables, 0)
    except entropy.EntropyError:
        pass


def test_coder_activity_is_the_fitted_definition():
    """The coder's activity (computed on pass views, int16) equals the weighted feature sum the
    thresholds were fitted on, for the largest weights the tables allow."""
    rgb = np.random.default_rng(4).integers(0, 256, (37, 29, 3), dtype=np.uint8)  # odd sides
    ints, levels = bands_of(rgb, 3.0)
    rng = np.random.default_rng(5)
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    sgn = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    checked = 0
    for k, o, c in entropy.band_order(levels):
        q = ints[c][k][o]
        mags[c][k][o] = np.minimum(np.abs(q), entropy.ESCAPE).astype(np.uint8)
        sgn[c][k][o] = np.sign(q).astype(np.int8)
        band = entropy._Band(mags, sgn, k, o, c, levels)
        for p in range(entropy.PASSES):
            w = rng.integers(0, entropy.MAX_WEIGHT + 1, len(entropy.FEATURES))
            f = band.features(p)
            np.testing.assert_array_equal(band.activity(w, p), entropy.activity(w, f[:-1], f[-1] if p else None))
            checked += f.shape[1]
    assert checked == sum(b.size for c in range(3) for t in ints[c][1:] for b in t)


def test_activity_never_exceeds_the_lookup():
    full = np.full((8, 8), entropy.ESCAPE, np.uint8)
    mags = [[None] + [[full] * 3 for _ in range(2)] for _ in range(3)]
    sgn = [[None] + [[np.zeros((8, 8), np.int8)] * 3 for _ in range(2)] for _ in range(3)]
    band = entropy._Band(mags, sgn, 2, 2, 2, levels=2)
    w = np.full(len(entropy.FEATURES), entropy.MAX_WEIGHT)
    # Interior positions of the last pass have all four neighbours: the largest activity there is.
    assert band.activity(w, 2).max() == entropy.MAX_ACTIVITY
