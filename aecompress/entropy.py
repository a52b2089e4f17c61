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

    def activity_terms(self, level: int) -> list[tuple[int, np.ndarray]]:
        """Per channel of a level, (lo, float64 weights of channels lo..c-1): the span of its
        nonzero weights, so that its lower activity is one product with a slice of the planes."""
        key = ("terms", level)
        if key not in self._rows:
            w = self.weights[level * self.channels : (level + 1) * self.channels].astype(np.float64)
            terms = []
            for c, row in enumerate(w):
                nz = np.flatnonzero(row)
                lo = int(nz[0]) if nz.size else c
                terms.append((lo, np.ascontiguousarray(row[lo:c])))
            self._rows[key] = terms
        return self._rows[key]

    def level(self, level: int) -> tuple[np.ndarray, ...]:
        """(offsets, sizes, offsets2, sizes2, predicted) of one level's channels."""
        r = slice(level * self.channels, (level + 1) * self.channels)
        return self.offsets[r], self.sizes[r], self.offsets2[r], self.sizes2[r], self.predicted[r]


@dataclass(frozen=True)
class Grid:
    """Checkerboard geometry of one latent plane. The coder keeps each channel's planes in
    *pass order* (first-pass positions, then second-pass ones) so that both passes are contiguous
    slices; the lower activity is per position, so the order does not change it."""

    first: np.ndarray  # (n1,) raster positions of the first pass, (y + x) even
    second: np.ndarray  # (n2,) raster positions of the second pass
    order: np.ndarray  # (h * w,) pass order -> raster position: first then second
    raster: np.ndarray  # (h * w,) raster position -> index in pass order
    neighbours: np.ndarray  # (4, n2) first-pass indices of each second-pass position's neighbours, n1 if outside
    present: np.ndarray  # (4, n2) the same with outside neighbours replaced by one inside (for max and min)
    count: np.ndarray  # (n2,) neighbours inside the plane (at least 1)


@lru_cache(maxsize=8)
def grid(h: int, w: int) -> Grid:
    is_second = second_pass(h, w)
    first, second = np.flatnonzero(~is_second), np.flatnonzero(is_second)
    order = np.concatenate([first, second])
    raster = np.empty_like(order)
    raster[order] = np.arange(order.size)
    y, x = np.divmod(second, w)
    ny = np.stack([y - 1, y + 1, y, y])
    nx = np.stack([x, x, x - 1, x + 1])
    inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
    # a second-pass position's neighbours are all first-pass ones
    idx = np.where(inside, raster[np.clip(ny, 0, h - 1) * w + np.clip(nx, 0, w - 1)], first.size)
    any_inside = idx[np.argmax(inside, axis=0), np.arange(second.size)]
    return Grid(
        first=first,
        second=second,
        order=order,
        raster=raster,
        neighbours=idx,
        present=np.where(inside, idx, any_inside),
        count=np.maximum(inside.sum(axis=0), 1),
    )


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


def neighbour_context(
    values: np.ndarray, mags: np.ndarray, predicted: np.ndarray, g: Grid
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, neighbour activity), each (channels, n2), of the second-pass positions from
    the first pass's known values and magnitudes, each (channels, n1). Prediction: the four
    neighbours' mean rounded half up, 0 where not predicted; activity: their spread (max - min)
    where predicted, else their summed magnitudes."""
    c, n1 = values.shape

    def gather(a: np.ndarray) -> np.ndarray:  # (c, 4, n2), 0 for a neighbour outside the plane
        padded = np.zeros((c, n1 + 1), dtype=np.int64)
        padded[:, :n1] = a
        return padded[:, g.neighbours]

    n2 = g.second.size
    pred = activity = np.zeros((c, n2), dtype=np.int64)
    if predicted.any():
        total = gather(values).sum(axis=1)
        pred = np.where(predicted[:, None], (2 * total + g.count) // (2 * g.count), 0)
        around = values[:, g.present]
        activity = around.max(axis=1) - around.min(axis=1)
    if not predicted.all():
        activity = np.where(predicted[:, None], activity, gather(mags).sum(axis=1))
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
    """What encode() works out channel by channel, for all channels at once, as planes in raster
    order: symbols, escape distances, magnitudes, predictions and contexts of values
    v (channels, h * w); lower activity only with weights. For fitting the tables
    (training/entropy_model.py); tests/test_entropy.py checks that it picks exactly the tables
    the coder picks."""
    offsets, sizes, offsets2, sizes2, predicted = tables_level
    g = grid(h, w)
    second = second_pass(h, w)
    sym1, dist1 = symbols(v, offsets, sizes)
    values, mag1 = first_pass_values(sym1, offsets, sizes)
    pred2, activity2 = neighbour_context(values[:, g.first], mag1[:, g.first], predicted, g)
    pred, activity = np.zeros_like(v), np.zeros_like(v)
    pred[:, g.second], activity[:, g.second] = pred2, activity2
    sym2, dist2 = symbols(v - pred, offsets2, sizes2)
    sym = np.where(second, sym2, sym1)
    mag = np.where(second, second_pass_magnitudes(sym2, pred, tables_level), mag1)
    esc = np.where(second, sym2 == sizes2[:, None], sym1 == sizes[:, None])
    return {
        "sym": sym,
        "escaped": np.where(second, dist2, dist1)[esc],
        "mag": mag,
        "pred": pred,
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


def _window(terms: tuple[int, np.ndarray], mag: np.ndarray, c: int) -> np.ndarray:
    """Channel c's lower activity from the float64 magnitudes of the channels before it: exact,
    as in lower_activity."""
    lo, wts = terms
    if lo == c:
        return np.zeros(mag.shape[1], dtype=np.int64)
    return (wts @ mag[lo:c]).astype(np.int64)


class _Channel:
    """One (level, channel)'s tables, for the encoder and the decoder, which go channel by
    channel: planes are (1, N) so that the vectorised helpers above serve both."""

    def __init__(self, tables: EntropyTables, level: int, c: int) -> None:
        k = level * tables.channels + c
        self.rows1, self.rows2 = tables.rows(level, c)
        self.t_lower, self.t_neigh = tables.t_lower[k], tables.t_neigh[k]
        self.level = tuple(a[c : c + 1] for a in tables.level(level))  # (offsets, sizes, offsets2, sizes2, predicted)
        self.size, self.size2 = int(tables.sizes[k]), int(tables.sizes2[k])

    def first_rows(self, window: np.ndarray) -> np.ndarray:
        return self.rows1[buckets(self.t_lower, self.t_neigh, window, None)]

    def second_rows(self, window: np.ndarray, activity: np.ndarray) -> np.ndarray:
        return self.rows2[buckets(self.t_lower, self.t_neigh, window, activity)]

    def symbols(self, v: np.ndarray, second: bool) -> tuple[np.ndarray, np.ndarray]:
        offsets, sizes = self.level[2:4] if second else self.level[:2]
        sym, dist = symbols(v[None], offsets, sizes)
        return sym[0], dist[0]

    def first_known(self, sym: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, mags = first_pass_values(sym[None], *self.level[:2])
        return values[0], mags[0]

    def second_magnitudes(self, sym: np.ndarray, pred: np.ndarray) -> np.ndarray:
        return second_pass_magnitudes(sym[None], pred[None], self.level)[0]


def encode(q: np.ndarray, tables: EntropyTables, level: int) -> bytes:
    """q: (channels, H, W) integer latents of one image at one level.

    Channel by channel, as the decoder goes, so that memory stays at a few planes per channel
    plus the magnitudes of all channels (the lower activity needs them)."""
    if q.ndim != 3 or q.shape[0] != tables.channels:
        raise ValueError(f"expected ({tables.channels}, H, W) latents, got {q.shape}")
    c_all, h, w = q.shape
    g = grid(h, w)
    n1 = g.first.size
    terms = tables.activity_terms(level)
    mag = np.zeros((c_all, h * w), dtype=np.float64)  # pass order
    escaped = []
    enc = constriction.stream.queue.RangeEncoder()
    for c in range(c_all):
        ch = _Channel(tables, level, c)
        v = q[c].reshape(-1)[g.order].astype(np.int64)
        window = _window(terms[c], mag, c)
        sym1, dist1 = ch.symbols(v[:n1], second=False)
        enc.encode(sym1.astype(np.int32), _FAMILY, ch.first_rows(window[:n1]))
        values, mag[c, :n1] = ch.first_known(sym1)
        esc = sym1 == ch.size
        dist = dist1
        if g.second.size:
            pred, activity = neighbour_context(values[None], mag[c : c + 1, :n1], ch.level[4], g)
            sym2, dist2 = ch.symbols(v[n1:] - pred[0], second=True)
            enc.encode(sym2.astype(np.int32), _FAMILY, ch.second_rows(window[n1:], activity[0]))
            mag[c, n1:] = ch.second_magnitudes(sym2, pred[0])
            esc = np.concatenate([esc, sym2 == ch.size2])
            dist = np.concatenate([dist1, dist2])
        if esc.any():  # escapes go in raster order
            escaped.append(dist[g.raster][esc[g.raster]])
    if escaped:
        _encode_escapes(enc, np.concatenate(escaped))
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
    g = grid(h, w)
    n1 = g.first.size
    terms = tables.activity_terms(level)
    mag = np.zeros((channels, h * w), dtype=np.float64)  # pass order, as in encode
    out = np.empty((channels, h * w), dtype=np.int64)  # pass order; an escape holds its base
    esc = np.zeros((channels, h * w), dtype=bool)
    for c in range(channels):
        ch = _Channel(tables, level, c)
        window = _window(terms[c], mag, c)
        sym1 = dec.decode(_FAMILY, ch.first_rows(window[:n1])).astype(np.int64)
        values, mag[c, :n1] = ch.first_known(sym1)
        esc[c, :n1] = sym1 == ch.size
        out[c, :n1] = ch.level[0][0]
        if g.second.size:
            pred, activity = neighbour_context(values[None], mag[c : c + 1, :n1], ch.level[4], g)
            sym2 = dec.decode(_FAMILY, ch.second_rows(window[n1:], activity[0])).astype(np.int64)
            mag[c, n1:] = ch.second_magnitudes(sym2, pred[0])
            esc[c, n1:] = sym2 == ch.size2
            out[c, n1:] = pred[0] + ch.level[2][0]
            sym1 = np.concatenate([sym1, sym2])
        out[c] += np.where(esc[c], 0, sym1)
    out, esc = out[:, g.raster], esc[:, g.raster]
    if esc.any():
        n = int(esc.sum())
        nlow = dec.decode(constriction.stream.model.Uniform(_MAX_BITS), n).astype(np.int32)
        u = np.left_shift(np.uint64(1), nlow.astype(np.uint64))
        d = _unzigzag(_code_bits(dec, u, nlow, decode=True))
        ch_idx, pos = np.nonzero(esc)
        k = level * tables.channels + ch_idx
        size = np.where(second_pass(h, w)[pos], tables.sizes2[k], tables.sizes[k])
        out[ch_idx, pos] += np.where(d < 0, d, size - 1 + d)
    return out.reshape(channels, h, w)
