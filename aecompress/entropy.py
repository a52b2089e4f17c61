"""Integer latents <-> bytes: range coding (constriction) with integer, context-selected tables.

Each (level, channel) is coded in two checkerboard passes: first the positions with (y + x) even,
then the others, each of which has four already decoded neighbours. A symbol j of an alphabet
stands for offset + j; one more symbol is an escape for anything outside the alphabet, whose
exact value follows at the end of the stream. In the second pass, channels where it pays (coarse
ones, such as a block's mean) code the residual from the rounded mean of the four neighbours
instead of the value.

Which table codes a symbol is chosen by integer contexts that the decoder already knows:
- *lower activity*: a weighted sum of the magnitudes of the channels before it at the same
  position, with integer weights fitted per channel to predict its magnitude (the transform orders
  channels from coarse to fine, and a block's fine coefficients are large where its coarser ones
  are), cut into K1 buckets at per-channel thresholds;
- second pass only, *neighbour activity*: the four neighbours' summed magnitudes, or for predicted
  channels their spread (max - min), cut into K2 buckets.

Features, thresholds and counts are all integers and the coder sees only the counts (exact in
float64), so decoding depends on no float that a model computed: the same file decodes the same
way everywhere. The layout is specified in docs/format.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import constriction
import numpy as np

_MAX_BITS = 32
_CHUNK = 16
_BIG = np.iinfo(np.int64).max // 8


class EntropyError(ValueError):
    """The entropy-coded payload does not decode to a valid latent tensor."""


@dataclass
class EntropyTables:
    counts: np.ndarray  # 1-D; per (level, channel): K1 rows over alphabet 1, then K1*K2 rows over alphabet 2
    starts: np.ndarray  # (levels * channels,) where each (level, channel)'s rows begin in counts
    offsets: np.ndarray  # (levels * channels,) first pass: value of symbol 0
    sizes: np.ndarray  # (levels * channels,) first pass: alphabet size, escape not counted
    offsets2: np.ndarray  # second pass: the same for residuals (predicted) or values (not)
    sizes2: np.ndarray
    predicted: np.ndarray  # (levels * channels,) bool: second pass codes residuals from the neighbour mean
    t_lower: np.ndarray  # (levels * channels, K1 - 1) thresholds of the lower activity
    t_neigh: np.ndarray  # (levels * channels, K2 - 1) thresholds of the neighbour activity
    weights: np.ndarray  # (levels * channels, channels) integer weights of the lower activity, zero from c on
    precision: int
    levels: int
    channels: int
    _rows: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> EntropyTables:
        with np.load(path) as z:
            levels, channels = (int(v) for v in z["shape"])
            ints = {k: z[k].astype(np.int64) for k in ("starts", "offsets", "sizes", "offsets2", "sizes2")}
            return cls(
                counts=z["counts"].astype(np.uint16),  # 16-bit counts: a quarter of the memory of int64
                **ints,
                predicted=z["predicted"].astype(bool),
                t_lower=z["t_lower"].astype(np.int64),
                t_neigh=z["t_neigh"].astype(np.int64),
                # only the channels before c count: a decoder has not decoded the others yet
                weights=z["weights"].astype(np.int64)
                * np.tri(channels, k=-1, dtype=np.int64)[None].repeat(levels, 0).reshape(levels * channels, channels),
                precision=int(z["precision"]),
                levels=levels,
                channels=channels,
            )

    @property
    def k1(self) -> int:
        return self.t_lower.shape[1] + 1

    @property
    def k2(self) -> int:
        return self.t_neigh.shape[1] + 1

    def rows(self, level: int, channel: int) -> tuple[np.ndarray, np.ndarray]:
        """float64 counts of one (level, channel): (K1, size + 1) and (K1 * K2, size2 + 1)."""
        k = level * self.channels + channel
        if k not in self._rows:
            n1 = self.k1 * (int(self.sizes[k]) + 1)
            n2 = self.k1 * self.k2 * (int(self.sizes2[k]) + 1)
            block = self.counts[self.starts[k] : self.starts[k] + n1 + n2].astype(np.float64)
            self._rows[k] = block[:n1].reshape(self.k1, -1), block[n1:].reshape(self.k1 * self.k2, -1)
        return self._rows[k]

    def activity_terms(self, level: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per channel of a level, (channel indices, float64 weights) of its nonzero weights."""
        key = ("terms", level)
        if key not in self._rows:
            w = self.weights[level * self.channels : (level + 1) * self.channels]
            self._rows[key] = [(np.flatnonzero(row), row[row != 0].astype(np.float64)) for row in w]
        return self._rows[key]

    def level(self, level: int) -> tuple[np.ndarray, ...]:
        """(offsets, sizes, offsets2, sizes2, predicted) of one level's channels."""
        r = slice(level * self.channels, (level + 1) * self.channels)
        return self.offsets[r], self.sizes[r], self.offsets2[r], self.sizes2[r], self.predicted[r]


def second_pass(h: int, w: int) -> np.ndarray:
    """(h * w,) bool: the positions of the second pass, (y + x) odd."""
    return ((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 1).ravel()


def symbols(v: np.ndarray, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, distances) of values (channels, N): a value outside its alphabet becomes the escape
    symbol and is later sent as its signed distance from the nearest edge, so small overshoots
    stay cheap."""
    idx = v - offsets[:, None]
    out = (idx < 0) | (idx >= sizes[:, None])
    return np.where(out, sizes[:, None], idx), idx - np.where(idx < 0, 0, sizes[:, None] - 1)


def _escape_edge(offsets: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(offsets), np.abs(offsets + sizes - 1))


def first_pass_values(sym: np.ndarray, offsets: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(known values, magnitudes) of first-pass symbols: an escape, whose value comes only at the
    end, counts as 0 for prediction and as its alphabet's farther edge for magnitude."""
    esc = sym == sizes[:, None]
    values = np.where(esc, 0, sym + offsets[:, None])
    return values, np.where(esc, _escape_edge(offsets, sizes)[:, None], np.abs(values))


@lru_cache(maxsize=8)
def _neighbour_count(h: int, w: int) -> np.ndarray:
    """(1, h, w): how many of the four neighbours lie inside the image (at least 1)."""
    p = np.zeros((h + 2, w + 2), dtype=np.int64)
    p[1:-1, 1:-1] = 1
    return np.maximum(p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:], 1)[None]


def neighbour_context(
    values: np.ndarray, mags: np.ndarray, predicted: np.ndarray, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, neighbour activity) per channel and position from the four neighbours' first
    pass values and magnitudes (only meaningful at second-pass positions, whose neighbours are all
    first-pass ones). Prediction: the neighbours' mean rounded half up, 0 where not predicted."""
    c = values.shape[0]

    def around(a: np.ndarray, fill: int) -> list[np.ndarray]:
        p = np.full((c, h + 2, w + 2), fill, dtype=np.int64)  # np.pad costs several times more
        p[:, 1:-1, 1:-1] = a.reshape(c, h, w)
        return [p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]]

    count = _neighbour_count(h, w)
    n = around(values, 0)
    total = n[0] + n[1] + n[2] + n[3]
    spread = total
    if predicted.any():
        hi, lo = around(values, -_BIG), around(values, _BIG)
        spread = np.maximum(np.maximum(hi[0], hi[1]), np.maximum(hi[2], hi[3])) - np.minimum(
            np.minimum(lo[0], lo[1]), np.minimum(lo[2], lo[3])
        )
    m = around(mags, 0)
    pred = np.where(predicted[:, None, None], (2 * total + count) // (2 * count), 0).reshape(c, -1)
    activity = np.where(predicted[:, None, None], spread, m[0] + m[1] + m[2] + m[3]).reshape(c, -1)
    return pred, activity


def second_pass_magnitudes(sym: np.ndarray, pred: np.ndarray, tables_level: tuple) -> np.ndarray:
    offsets, sizes, offsets2, sizes2, _ = tables_level
    esc = sym == sizes2[:, None]
    return np.where(esc, _escape_edge(offsets, sizes)[:, None], np.abs(pred + sym + offsets2[:, None]))


def lower_activity(weights: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """weights (channels, channels) @ magnitudes (channels, N). In float64 for speed (BLAS) but
    exact: integer weights times magnitudes bounded by the tables stay far below 2**53."""
    return (weights.astype(np.float64) @ mag.astype(np.float64)).astype(np.int64)


def analyse(v: np.ndarray, tables_level: tuple, weights: np.ndarray | None, h: int, w: int) -> dict[str, np.ndarray]:
    """What encode() works out channel by channel, for all channels at once: symbols, escape
    distances, magnitudes and contexts of values v (channels, h * w); lower activity only with
    weights. For fitting the tables (training/entropy_model.py); tests/test_entropy.py checks
    that it picks exactly the tables the coder picks."""
    offsets, sizes, offsets2, sizes2, predicted = tables_level
    second = second_pass(h, w)
    sym1, dist1 = symbols(v, offsets, sizes)
    values, mag1 = first_pass_values(sym1, offsets, sizes)
    pred, activity = neighbour_context(values, mag1, predicted, h, w)
    sym2, dist2 = symbols(v - pred, offsets2, sizes2)
    sym = np.where(second, sym2, sym1)
    mag = np.where(second, second_pass_magnitudes(sym2, pred, tables_level), mag1)
    esc = np.where(second, sym2 == sizes2[:, None], sym1 == sizes[:, None])
    return {
        "sym": sym,
        "escaped": np.where(second, dist2, dist1)[esc],
        "mag": mag,
        "lower": None if weights is None else lower_activity(weights, mag),
        "activity": activity,
        "second": second,
    }


def buckets(t_lower: np.ndarray, t_neigh: np.ndarray, lower: np.ndarray, activity: np.ndarray | None) -> np.ndarray:
    """Table row per position from one (level, channel)'s thresholds; activity None: first pass."""
    b = np.searchsorted(t_lower, lower, side="right")
    if activity is None:
        return b
    return b + (len(t_lower) + 1) * np.searchsorted(t_neigh, activity, side="right")


def _zigzag(d: np.ndarray) -> np.ndarray:
    return np.where(d >= 0, 2 * d, -2 * d - 1).astype(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _window(terms: tuple[np.ndarray, np.ndarray], mag: np.ndarray) -> np.ndarray:
    """One channel's lower activity from the magnitudes of the channels before it (exact, as in
    lower_activity)."""
    idx, wts = terms
    if not idx.size:
        return np.zeros(mag.shape[1], dtype=np.int64)
    return (wts @ mag[idx].astype(np.float64)).astype(np.int64)


def encode(q: np.ndarray, tables: EntropyTables, level: int) -> bytes:
    """q: (channels, H, W) integer latents of one image at one level.

    Channel by channel, as the decoder goes, so that memory stays at a few planes per channel
    plus the magnitudes (int32) of a 24-megapixel photograph's 192 x 94k latents."""
    if q.ndim != 3 or q.shape[0] != tables.channels:
        raise ValueError(f"expected ({tables.channels}, H, W) latents, got {q.shape}")
    c_all, h, w = q.shape
    v = q.reshape(c_all, -1)
    lv = tables.level(level)
    offsets, sizes, offsets2, sizes2, predicted = lv
    is_second = second_pass(h, w)
    first, second = np.flatnonzero(~is_second), np.flatnonzero(is_second)
    terms = tables.activity_terms(level)
    mag = np.zeros((c_all, h * w), dtype=np.int32)
    escaped = []
    enc = constriction.stream.queue.RangeEncoder()
    for c in range(c_all):
        k = level * tables.channels + c
        one = slice(c, c + 1)
        rows1, rows2 = tables.rows(level, c)
        window = _window(terms[c], mag)
        vc = v[one].astype(np.int64)
        sym, dist = symbols(vc, offsets[one], sizes[one])
        values, mag1 = first_pass_values(sym, offsets[one], sizes[one])
        b = buckets(tables.t_lower[k], tables.t_neigh[k], window[first], None)
        enc.encode(sym[0, first].astype(np.int32), _FAMILY, rows1[b])
        esc = sym[0] == sizes[c]
        mag[c] = mag1[0]
        if second.size:
            pred, activity = neighbour_context(values, mag1, predicted[one], h, w)
            sym2, dist2 = symbols(vc - pred, offsets2[one], sizes2[one])
            b = buckets(tables.t_lower[k], tables.t_neigh[k], window[second], activity[0, second])
            enc.encode(sym2[0, second].astype(np.int32), _FAMILY, rows2[b])
            lv_c = tuple(x[one] for x in lv)
            mag[c, second] = second_pass_magnitudes(sym2[:, second], pred[:, second], lv_c)[0]
            esc = np.where(is_second, sym2[0] == sizes2[c], esc)
            dist = np.where(is_second, dist2, dist)
        escaped.append(dist[0, esc])
    escaped = np.concatenate(escaped)
    if escaped.size:
        _encode_escapes(enc, escaped)
    return enc.get_compressed().astype("<u4").tobytes()


def _encode_escapes(enc, d: np.ndarray) -> None:
    u = _zigzag(d)  # >= 1: an escaped value is never on the table's edge
    nbits = np.array([int(v).bit_length() for v in u], dtype=np.int32)
    if nbits.max() > _MAX_BITS:
        raise ValueError("latent value too large to code")
    enc.encode(nbits - 1, constriction.stream.model.Uniform(_MAX_BITS))
    _code_bits(enc, u, nbits - 1, decode=False)


def _code_bits(coder, u: np.ndarray, nlow: np.ndarray, decode: bool) -> np.ndarray:
    """The nlow[i] bits of u[i] below its leading one, in chunks of at most 16 bits."""
    for start in range(0, _MAX_BITS, _CHUNK):
        width = np.clip(nlow - start, 0, _CHUNK)
        sel = np.nonzero(width > 0)[0]
        if sel.size == 0:
            break
        sizes = (1 << width[sel]).astype(np.int32)
        model = constriction.stream.model.Uniform()
        if decode:
            chunk = coder.decode(model, sizes).astype(np.uint64)
            u[sel] |= chunk << np.uint64(start)
        else:
            chunk = (u[sel] >> np.uint64(start)) & ((np.uint64(1) << width[sel].astype(np.uint64)) - 1)
            coder.encode(chunk.astype(np.int32), model, sizes)
    return u


def decode(data: bytes, shape: tuple[int, int, int], tables: EntropyTables, level: int) -> np.ndarray:
    """Inverse of encode; raises EntropyError for a payload that is not a valid code stream."""
    try:
        return _decode(data, shape, tables, level)
    except EntropyError:
        raise
    except (AssertionError, ValueError, RuntimeError, OverflowError) as e:
        # constriction reports an impossible code stream with an AssertionError
        raise EntropyError(f"corrupted latent payload ({e})") from None


def _decode(data: bytes, shape: tuple[int, int, int], tables: EntropyTables, level: int) -> np.ndarray:
    channels, h, w = shape
    if channels != tables.channels:
        raise EntropyError(f"file has {channels} latent channels, the model {tables.channels}")
    if len(data) % 4:
        raise EntropyError("entropy-coded payload is not a whole number of words")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    lv = tables.level(level)
    offsets, sizes, offsets2, sizes2, predicted = lv
    is_second = second_pass(h, w)
    first, second = np.flatnonzero(~is_second), np.flatnonzero(is_second)
    sym = np.zeros((channels, h * w), dtype=np.int64)
    pred = np.zeros((channels, h * w), dtype=np.int32)
    mag = np.zeros((channels, h * w), dtype=np.int32)
    terms = tables.activity_terms(level)
    for c in range(channels):
        k = level * tables.channels + c
        one = slice(c, c + 1)
        rows1, rows2 = tables.rows(level, c)
        window = _window(terms[c], mag)
        b = buckets(tables.t_lower[k], tables.t_neigh[k], window[first], None)
        sym[c, first] = dec.decode(_FAMILY, rows1[b])
        values, mag1 = first_pass_values(sym[one], offsets[one], sizes[one])
        mag[c] = mag1[0]
        if second.size:
            p, activity = neighbour_context(values, mag1, predicted[one], h, w)
            b = buckets(tables.t_lower[k], tables.t_neigh[k], window[second], activity[0, second])
            sym[c, second] = dec.decode(_FAMILY, rows2[b])
            pred[c, second] = p[0, second]
            lv_c = tuple(x[one] for x in lv)
            mag[c, second] = second_pass_magnitudes(sym[one, second], p[:, second], lv_c)[0]
    esc = np.zeros(sym.shape, dtype=bool)
    esc[:, first] = sym[:, first] == sizes[:, None]
    esc[:, second] = sym[:, second] == sizes2[:, None]
    if esc.any():
        n = int(esc.sum())
        nlow = dec.decode(constriction.stream.model.Uniform(_MAX_BITS), n).astype(np.int32)
        u = np.left_shift(np.uint64(1), nlow.astype(np.uint64))
        d = _unzigzag(_code_bits(dec, u, nlow, decode=True))
        ch, pos = np.nonzero(esc)
        size = np.where(is_second[pos], sizes2[ch], sizes[ch])
        sym[ch, pos] = np.where(d < 0, d, size - 1 + d)
    sym[:, first] += offsets[:, None]
    sym[:, second] += pred[:, second] + offsets2[:, None]
    return sym.reshape(channels, h, w)
