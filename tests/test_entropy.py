import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecompress import entropy, models
from aecompress.entropy import EntropyTables


@pytest.fixture(scope="module")
def tables() -> EntropyTables:
    return EntropyTables.load(models.get().path("tables"))


def test_tables_are_valid_integer_cdfs(tables):
    p = 1 << tables.precision
    for k in range(tables.cdf.shape[0]):
        row = tables.cdf[k, : tables.sizes[k] + 2]
        assert row[0] == 0 and row[-1] == p
        assert np.all(np.diff(row) >= 1), "every symbol, the escape included, must stay codable"


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
