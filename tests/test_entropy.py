import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecompress import entropy, models
from aecompress.entropy import EntropyTables


@pytest.fixture(scope="module")
def tables() -> EntropyTables:
    return EntropyTables.load(models.get().path("tables"))


def test_tables_are_valid_integer_distributions(tables):
    total = 1 << tables.precision
    last = tables.k1 * (tables.sizes[-1] + 1 + tables.k2 * (tables.sizes2[-1] + 1))
    assert tables.counts.size == tables.starts[-1] + last
    for level in range(tables.levels):
        for c in range(tables.channels):
            for rows in tables.rows(level, c):
                assert np.all(rows.sum(axis=1) == total)
                assert np.all(rows >= 1), "every symbol, the escape included, must stay codable"
    assert np.all(np.diff(tables.t_lower, axis=1) >= 0) and np.all(np.diff(tables.t_neigh, axis=1) >= 0)


def test_contexts_are_used(tables):
    """A channel's values must cost less beside busy coarser channels than beside quiet ones (the
    lower activity), or the context tables are not doing their job."""
    level = tables.levels - 1
    rows = slice(level * tables.channels, (level + 1) * tables.channels)
    finite = (tables.t_lower[rows] < np.iinfo(np.int64).max).all(axis=1)
    c = int(np.flatnonzero(finite & (tables.weights[rows].sum(axis=1) > 0))[-1])
    k = level * tables.channels + c
    w = tables.weights[k]
    quiet = np.zeros((tables.channels, 32, 32), dtype=np.int64)
    busy = quiet.copy()
    busy[w > 0] = tables.t_lower[k, -1] // w.sum() + 1  # activity above the top threshold
    values = np.random.default_rng(0).integers(-2, 3, (32, 32)) + tables.offsets[k] + tables.sizes[k] // 2

    def cost(q):
        with_c = q.copy()
        with_c[c] = values
        return len(entropy.encode(with_c, tables, level)) - len(entropy.encode(q, tables, level))

    assert cost(busy) < cost(quiet)


def test_activity_weights_look_only_at_earlier_channels(tables):
    for level in range(tables.levels):
        w = tables.weights[level * tables.channels : (level + 1) * tables.channels]
        assert np.all(np.triu(w) == 0) and np.all(w >= 0)


@pytest.mark.parametrize("level", [0, 3, -1])
def test_round_trip_with_escapes(tables, level):
    level = level % tables.levels
    rng = np.random.default_rng(level)
    q = rng.laplace(0, 2, (tables.channels, 5, 7)).round().astype(np.int64)
    q[0, 0, 0] = 1_000_000  # far outside any table
    q[1, 2, 3] = -77_777
    q[2, 4, 6] = 1 << 24
    data = entropy.encode(q, tables, level)
    assert np.array_equal(entropy.decode(data, q.shape, tables, level), q)


def test_encoding_is_deterministic(tables):
    q = np.random.default_rng(1).integers(-3, 4, (tables.channels, 4, 4))
    assert entropy.encode(q, tables, 2) == entropy.encode(q.copy(), tables, 2)


def test_likely_symbols_cost_little(tables):
    zeros = np.zeros((tables.channels, 16, 16), dtype=np.int64)
    wild = np.random.default_rng(0).integers(-50, 50, zeros.shape)
    assert len(entropy.encode(zeros, tables, 0)) < len(entropy.encode(wild, tables, 0)) / 5


def test_garbage_payload_length_refused(tables):
    with pytest.raises(entropy.EntropyError):
        entropy.decode(b"abc", (tables.channels, 1, 1), tables, 0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=256).map(lambda b: b[: len(b) // 4 * 4]))
def test_garbage_payload_decodes_or_fails_cleanly(data):
    tables = EntropyTables.load(models.get().path("tables"))
    try:
        q = entropy.decode(data, (tables.channels, 2, 3), tables, 1)
    except entropy.EntropyError:
        return
    assert q.shape == (tables.channels, 2, 3)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.integers(0, 7),
    st.floats(0.1, 300),
    st.integers(0, 2**32 - 1),
)
def test_round_trip_any_shape_and_scale(h, w, level, scale, seed):
    """Thin and tiny latent grids (borders with fewer neighbours), quiet and wild values alike."""
    tables = EntropyTables.load(models.get().path("tables"))
    level %= tables.levels
    q = np.random.default_rng(seed).laplace(0, scale, (tables.channels, h, w)).round().astype(np.int64)
    assert np.array_equal(entropy.decode(entropy.encode(q, tables, level), q.shape, tables, level), q)


def test_fitting_analysis_matches_the_coder(tables):
    """training/ fits the tables on entropy.analyse(); the coder must choose the same tables for
    the same symbols: the ideal code length under analyse's contexts equals the coded size."""
    level = 3
    rng = np.random.default_rng(5)
    scale = np.linspace(8, 0.3, tables.channels)[:, None, None]
    q = np.rint(rng.laplace(0, 1, (tables.channels, 12, 10)) * scale).astype(np.int64)
    rows = slice(level * tables.channels, (level + 1) * tables.channels)
    a = entropy.analyse(q.reshape(tables.channels, -1), tables.level(level), tables.weights[rows], 12, 10)
    second = a["second"]
    bits = 0.0
    for c in range(tables.channels):
        k = level * tables.channels + c
        rows1, rows2 = tables.rows(level, c)
        b1 = entropy.buckets(tables.t_lower[k], tables.t_neigh[k], a["lower"][c, ~second], None)
        b2 = entropy.buckets(tables.t_lower[k], tables.t_neigh[k], a["lower"][c, second], a["activity"][c, second])
        for r, b, s in ((rows1, b1, a["sym"][c, ~second]), (rows2, b2, a["sym"][c, second])):
            bits -= np.log2(r[b, s] / r[b].sum(axis=1)).sum()
    coded = 8 * len(entropy.encode(q, tables, level))
    escape_bits = 64 * a["escaped"].size
    assert bits <= coded <= bits * 1.01 + escape_bits + 64
