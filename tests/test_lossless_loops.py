"""The compiled loops (aecompress/csrc/) against the NumPy reference they replace:
the same bits, including where one path would misbehave on the other's inputs."""

import numpy as np
import pytest

from aecompress import loops, lossless, lossless_coder, models, reversible

pytestmark = pytest.mark.skipif(loops.compiled is None, reason="the C loops were not built")


@pytest.fixture
def numpy_only(monkeypatch):
    """Switches the C off for the duration: calls then run the NumPy reference."""

    def off():
        monkeypatch.setattr(loops, "compiled", None)

    return off


def photo(h: int, w: int, channels: int, bits: int, seed: int) -> np.ndarray:
    """Smooth structure plus grain, so every context and kernel gets used."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.4 * np.sin(x / 7.0 + seed)[..., None] * np.cos(y / 11.0)[..., None]
    a = base + rng.normal(0, 0.04, (h, w, channels))
    return np.clip(a * ((1 << bits) - 1), 0, (1 << bits) - 1).astype(np.uint16 if bits > 8 else np.uint8)


def test_lifting_matches_numpy_on_odd_sizes_every_kernel_and_huge_values(numpy_only):
    rng = np.random.default_rng(0)
    cases = []
    for trial in range(120):
        h, w = (int(v) for v in rng.integers(1, 24, 2))
        big = trial % 5 == 0  # values whose sums wrap int32: both paths must wrap alike
        x = rng.integers(-(2**30) if big else -5000, 2**30 if big else 5000, (h, w)).astype(np.int32)
        cases.append((x, reversible.KERNELS[trial % 3], big))
    compiled = [(reversible.step_forward(x, k), k) for x, k, _ in cases]
    inverted = [reversible.step_inverse(f[0], f[1], k) for f, k in compiled]
    numpy_only()
    for (x, k, big), (f, _), y in zip(cases, compiled, inverted, strict=True):
        ref = reversible.step_forward(x, k)
        assert np.array_equal(f[0], ref[0]) and all(np.array_equal(a, b) for a, b in zip(f[1], ref[1], strict=True))
        assert np.array_equal(y, reversible.step_inverse(f[0], f[1], k))
        if not big:
            assert np.array_equal(y, x)


@pytest.mark.parametrize("shape, channels, bits", [((70, 93), 3, 8), ((41, 37), 4, 16), ((33, 64), 1, 8)])
def test_encoder_and_decoder_give_numpys_bytes_and_samples(numpy_only, shape, channels, bits):
    """The whole lossless path, both directions: the C makes the very bytes NumPy makes."""
    a = photo(*shape, channels, bits, seed=channels)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    tables = default_tables()
    layout, sections = lossless.encode(a, mode, bits, tables)
    assert any(layout.shifts) == (bits > 8)  # 16-bit planes send low bits raw: that path too
    decoded = lossless.decode(sections, layout, tables)
    numpy_only()
    layout_ref, sections_ref = lossless.encode(a, mode, bits, tables)
    assert layout == layout_ref and sections == sections_ref
    assert np.array_equal(lossless.decode(sections, layout, tables), decoded)
    assert np.array_equal(decoded.reshape(a.shape), a)


def test_scale_choice_and_buckets_match_numpy(numpy_only):
    tables = default_tables()
    rng = np.random.default_rng(3)
    runs = []
    for _ in range(60):
        cls, p = int(rng.integers(lossless_coder.CLASSES)), int(rng.integers(lossless_coder.PASSES))
        n = int(rng.integers(1, 5000))
        act = (rng.gamma(1.0, float(rng.choice([5, 50, 500, 5000])), n)).astype(np.int32)
        tok = np.minimum(rng.geometric(0.3, n) - 1, lossless_coder.TOKENS - 1).astype(np.int32)
        scale = int(rng.integers(len(lossless_coder.SCALES)))
        groups = tables.bucket_runs(cls, p, act.copy(), scale)
        runs.append((cls, p, act, tok, scale, lossless_coder._choose_scale(tables, cls, p, act, tok), groups))
    numpy_only()
    for cls, p, act, tok, scale, chosen, groups in runs:
        assert chosen == lossless_coder._choose_scale(tables, cls, p, act, tok)
        order, runs = tables.bucket_runs(cls, p, act.copy(), scale)
        assert groups[1] == runs
        assert (groups[0] is None) == (order is None)
        if order is not None:
            assert np.array_equal(groups[0], order)


def test_the_loops_refuse_mismatched_buffers():
    c = loops.compiled
    with pytest.raises(ValueError):
        c.lift(np.zeros((4, 5), np.int32), np.zeros((4, 2), np.int32), np.zeros((4, 2), np.int32), 1, 0, False)
    with pytest.raises(ValueError):
        c.lift(np.zeros((4, 5), np.int64), np.zeros((4, 3), np.int32), np.zeros((4, 2), np.int32), 1, 0, False)
    counts = np.zeros(24, np.int64)
    with pytest.raises(ValueError):
        c.bucket_order(np.zeros(5, np.int32), 16, np.zeros(3, np.uint8), np.zeros(4, np.int32), counts)
    with pytest.raises(ValueError):  # a table naming a bucket past the counts
        c.bucket_order(np.zeros(4, np.int32), 16, np.full(3, 30, np.uint8), np.zeros(4, np.int32), counts)
    with pytest.raises(ValueError):
        c.activity(np.zeros(3, np.int32), np.zeros((6, 6), np.int32), ((0, 0, 1),), np.zeros(10, np.int32), (None,) * 7)


def default_tables() -> lossless_coder.LosslessTables:
    return lossless_coder.LosslessTables.load(models.get(None, "lossless").path("tables"))


def test_a_section_short_of_its_signs_is_refused(numpy_only):
    """decode_pass reads each pass's signs after its range-coded part: a section cut inside
    its signs (checksums made valid again) must end in the clean error, in C as in NumPy."""
    import aecompress
    from aecompress import container

    a = photo(48, 64, 3, 8, seed=5)
    lat = container.parse(aecompress.compress(a, lossless=True))
    codec = lossless.LosslessCodec()
    sections = list(lat.sections)
    sections[-1] = sections[-1][:-1]  # the finest level's last sign byte
    crafted = container.LatFile(lat.header, b"", None, lat.icc, lat.exif, lat.xmp, tuple(sections)).pack()
    with pytest.raises(container.FormatError, match="sign"):
        codec.decompress(container.parse(crafted))
    numpy_only()
    with pytest.raises(container.FormatError, match="sign"):
        codec.decompress(container.parse(crafted))
