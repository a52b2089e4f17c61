"""Quantised wavelet subbands <-> bytes: range coding (constriction) with integer context tables.

Order: the low band first (its few values in Exp-Golomb form), then the detail bands from the
coarsest level to the finest, at each level HL, LH, HH, and in each of those Y, Cb, Cr. Each band
goes in two checkerboard passes, (y + x) even first. A coefficient's magnitude is coded as a
symbol 0..14 or the escape 15, from one of BUCKETS tables chosen by its *activity*: a weighted sum
of magnitudes the decoder already has,

- its parent (the same orientation one level coarser, at half the coordinates) and the parent's
  four neighbours,
- its siblings (the same position in this level's bands of the same channel coded before it),
- the same band of luma (for Cb and Cr) and of Cb (for Cr),
- in the second pass, its four neighbours, all of them from the first pass,

with integer weights fitted per band class and pass, cut at integer thresholds fitted per level.
An activity of 0 has its own table, so the large all-zero areas of a smooth photograph cost a
small fraction of a bit per coefficient. Symbols of one pass are coded grouped by table (one call
per table, which is what makes a few million symbols per second possible in Python). Contexts use
the symbols (magnitudes capped at 15), so escapes and signs can follow at the end: the escaped
magnitudes in Exp-Golomb form, then one bit per nonzero coefficient for its sign.

Features, weights, thresholds and counts are integers and the coder sees only the counts (exact in
float64), so decoding depends on no float that a model computed: the same file decodes the same
way everywhere. The layout is specified in docs/format.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import constriction
import numpy as np

SYMBOLS = 16
ESCAPE = SYMBOLS - 1
BUCKETS = 12
FEATURES = ("parent", "parent_neighbours", "siblings", "luma", "cb", "neighbours")
LEVEL_CLASSES = 6  # detail levels counted from the finest; coarser ones share the last class
CLASSES = 3 * LEVEL_CLASSES * 2  # channel x level class x (HL or LH, HH)
_MAX_BITS = 40
_CHUNK = 16


class EntropyError(ValueError):
    """The entropy-coded payload does not decode to valid subbands."""


@dataclass
class ContextTables:
    steps: np.ndarray  # (levels,) float64 base quantiser step of each quality level
    weights: np.ndarray  # (CLASSES, 2, len(FEATURES)) int64 activity weights per class and pass
    thresholds: np.ndarray  # (levels, CLASSES, 2, BUCKETS - 1) int64, increasing, the first >= 1
    counts: np.ndarray  # (levels, CLASSES, 2, BUCKETS, SYMBOLS) uint16, all >= 1

    @property
    def levels(self) -> int:
        return len(self.steps)

    @classmethod
    def load(cls, path: Path) -> ContextTables:
        with np.load(path) as z:
            t = cls(
                steps=z["steps"].astype(np.float64),
                weights=z["weights"].astype(np.int64),
                thresholds=z["thresholds"].astype(np.int64),
                counts=z["counts"].astype(np.uint16),
            )
        t.check()
        return t

    def save(self, path: Path) -> None:
        self.check()
        np.savez_compressed(
            path,
            steps=self.steps,
            weights=self.weights.astype(np.int32),
            thresholds=self.thresholds.astype(np.int64),
            counts=self.counts.astype(np.uint16),
        )

    def check(self) -> None:
        n = self.levels
        if self.weights.shape != (CLASSES, 2, len(FEATURES)) or self.weights.min() < 0:
            raise ValueError("context tables: bad weights")
        if self.thresholds.shape != (n, CLASSES, 2, BUCKETS - 1) or (np.diff(self.thresholds, axis=-1) < 0).any():
            raise ValueError("context tables: bad thresholds")
        if self.counts.shape != (n, CLASSES, 2, BUCKETS, SYMBOLS) or self.counts.min() < 1:
            raise ValueError("context tables: bad counts")


def band_class(channel: int, level_from_fine: int, orientation: int) -> int:
    lv = min(level_from_fine, LEVEL_CLASSES) - 1
    return (channel * LEVEL_CLASSES + lv) * 2 + (orientation == 2)


def band_order(levels: int) -> list[tuple[int, int, int]]:
    """(k, orientation, channel) in coding order; k indexes wavelet.forward's band list (1: coarsest)."""
    return [(k, o, c) for k in range(1, levels + 1) for o in range(3) for c in range(3)]


def first_pass(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return (np.arange(h)[:, None] + np.arange(w)[None, :]) % 2 == 0


def _fit(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """a cropped or zero-padded to shape (bands of one level differ by one where a side is odd)."""
    h, w = shape
    out = np.zeros(shape, dtype=a.dtype)
    hh, ww = min(h, a.shape[0]), min(w, a.shape[1])
    out[:hh, :ww] = a[:hh, :ww]
    return out


def _neighbour_sum(a: np.ndarray) -> np.ndarray:
    """Sum of the four neighbours of each position (outside counts as 0), in int32."""
    a = a.astype(np.int32)
    s = np.zeros_like(a)
    s[1:] += a[:-1]
    s[:-1] += a[1:]
    s[:, 1:] += a[:, :-1]
    s[:, :-1] += a[:, 1:]
    return s


def _upsample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return _fit(np.repeat(np.repeat(a, 2, axis=0), 2, axis=1), shape)


def static_features(mags: list, k: int, o: int, c: int, shape: tuple[int, int]) -> np.ndarray:
    """(5, h, w) int32: every feature but the neighbours, from the symbols decoded before band
    (k, o, c). mags[c][k][o] holds decoded bands' symbols (uint8), None where not yet decoded."""
    f = np.zeros((len(FEATURES) - 1,) + shape, dtype=np.int32)
    if k > 1:
        parent = mags[c][k - 1][o]
        f[0] = _upsample(parent.astype(np.int32), shape)
        f[1] = _upsample(_neighbour_sum(parent), shape)
    for s in range(o):
        f[2] += _fit(mags[c][k][s], shape)
    if c > 0:
        f[3] = _fit(mags[0][k][o], shape)
    if c > 1:
        f[4] = _fit(mags[1][k][o], shape)
    return f


def activity(weights: np.ndarray, feats: np.ndarray, neighbours: np.ndarray | None) -> np.ndarray:
    """Integer activity of positions: feats (5, n), neighbours (n,) or None in the first pass."""
    a = np.tensordot(weights[:-1].astype(np.int64), feats.astype(np.int64), axes=1)
    if neighbours is not None:
        a += weights[-1] * neighbours.astype(np.int64)
    return a


def analyse(bands: list, levels: int):
    """For fitting tables: per band and pass of one channel set, yields (class, pass, features
    (6, n), symbols (n,)), exactly the contexts the coder sees. bands: per channel, as from
    quantise.quantise_bands."""
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    for k, o, c in band_order(levels):
        q = bands[c][k][o]
        sym = np.minimum(np.abs(q), ESCAPE).astype(np.uint8)
        mags[c][k][o] = sym
        feats = static_features(mags, k, o, c, q.shape)
        first = first_pass(q.shape)
        cls = band_class(c, levels - k + 1, o)
        nb = _neighbour_sum(np.where(first, sym, 0))
        for p, mask in enumerate((first, ~first)):
            f = np.concatenate([feats[:, mask], (nb[mask] if p else np.zeros(mask.sum(), np.int32))[None]])
            yield cls, p, f, sym[mask]


def _buckets(tables: ContextTables, level: int, cls: int, p: int, act: np.ndarray) -> np.ndarray:
    return np.searchsorted(tables.thresholds[level, cls, p], act, side="right")


def _groups(b: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Positions of each bucket present, buckets in increasing order, positions in raster order."""
    order = np.argsort(b, kind="stable")
    counts = np.bincount(b, minlength=BUCKETS)
    out, start = [], 0
    for bucket in np.flatnonzero(counts):
        n = int(counts[bucket])
        out.append((int(bucket), order[start : start + n]))
        start += n
    return out


class _Rows:
    """constriction models of one level's tables, built once per (class, pass, bucket)."""

    def __init__(self, tables: ContextTables, level: int) -> None:
        self.counts = tables.counts[level]
        self._cache: dict = {}

    def __call__(self, cls: int, p: int, bucket: int) -> np.ndarray:
        key = (cls, p, bucket)
        if key not in self._cache:
            row = self.counts[cls, p, bucket].astype(np.float64)
            self._cache[key] = constriction.stream.model.Categorical(row / row.sum(), perfect=False)
        return self._cache[key]


def _zigzag(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.int64)
    return np.where(d >= 0, 2 * d, -2 * d - 1).astype(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def _encode_numbers(enc, u: np.ndarray) -> None:
    """Non-negative integers as (bit length, bits below the leading one), Exp-Golomb style."""
    u = u.astype(np.uint64) + np.uint64(1)
    nbits = np.array([int(v).bit_length() for v in u], dtype=np.int32)
    if nbits.size == 0:
        return
    if nbits.max() > _MAX_BITS:
        raise ValueError("coefficient too large to code")
    enc.encode(nbits - 1, constriction.stream.model.Uniform(_MAX_BITS))
    _code_bits(enc, u, nbits - 1, decode=False)


def _decode_numbers(dec, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    nlow = dec.decode(constriction.stream.model.Uniform(_MAX_BITS), n).astype(np.int32)
    u = np.left_shift(np.uint64(1), nlow.astype(np.uint64))
    return (_code_bits(dec, u, nlow, decode=True) - np.uint64(1)).astype(np.int64)


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


def encode(bands: list, levels: int, tables: ContextTables, level: int) -> bytes:
    """bands: per channel (Y, Cb, Cr), [LL, (HL, LH, HH) coarsest .. finest] of integers."""
    enc = constriction.stream.queue.RangeEncoder()
    _encode_numbers(enc, _zigzag(np.concatenate([bands[c][0].ravel() for c in range(3)])))
    rows = _Rows(tables, level)
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    escapes, signs = [], []
    for k, o, c in band_order(levels):
        q = bands[c][k][o]
        if q.size == 0:
            mags[c][k][o] = np.zeros(q.shape, np.uint8)
            continue
        a = np.abs(q)
        sym = np.minimum(a, ESCAPE).astype(np.uint8)
        mags[c][k][o] = sym
        feats = static_features(mags, k, o, c, q.shape)
        first = first_pass(q.shape)
        cls = band_class(c, levels - k + 1, o)
        nb = _neighbour_sum(np.where(first, sym, 0))
        for p, mask in enumerate((first, ~first)):
            s = sym[mask]
            act = activity(tables.weights[cls, p], feats[:, mask], nb[mask] if p else None)
            for bucket, idx in _groups(_buckets(tables, level, cls, p, act)):
                enc.encode(s[idx].astype(np.int32), rows(cls, p, bucket))
            escapes.append(a[mask][s == ESCAPE] - ESCAPE)
            signs.append((q[mask][s > 0] < 0).astype(np.int32))
    _encode_numbers(enc, np.concatenate(escapes) if escapes else np.zeros(0, np.int64))
    signs_all = np.concatenate(signs) if signs else np.zeros(0, np.int32)
    if signs_all.size:
        enc.encode(signs_all, constriction.stream.model.Uniform(2))
    return enc.get_compressed().astype("<u4").tobytes()


def decode(data: bytes, shapes: list, levels: int, tables: ContextTables, level: int) -> list:
    """Inverse of encode, given wavelet.band_shapes; raises EntropyError for a payload that is not
    a valid code stream."""
    try:
        return _decode(data, shapes, levels, tables, level)
    except EntropyError:
        raise
    except (AssertionError, ValueError, RuntimeError, OverflowError, IndexError) as e:
        # constriction reports an impossible code stream with an AssertionError
        raise EntropyError(f"corrupted payload ({e})") from None


def _decode(data: bytes, shapes: list, levels: int, tables: ContextTables, level: int) -> list:
    if len(data) % 4:
        raise EntropyError("entropy-coded payload is not a whole number of words")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    low_shape = shapes[0]
    n_low = low_shape[0] * low_shape[1]
    low = _unzigzag(_decode_numbers(dec, 3 * n_low)).reshape(3, *low_shape)
    rows = _Rows(tables, level)
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    for k, o, c in band_order(levels):
        shape = shapes[k][o]
        sym = np.zeros(shape, dtype=np.uint8)
        mags[c][k][o] = sym
        if sym.size == 0:
            continue
        feats = static_features(mags, k, o, c, shape)
        first = first_pass(shape)
        cls = band_class(c, levels - k + 1, o)
        for p, mask in enumerate((first, ~first)):
            nb = _neighbour_sum(sym)[mask] if p else None  # second-pass entries are still 0 here
            act = activity(tables.weights[cls, p], feats[:, mask], nb)
            s = np.empty(act.size, dtype=np.uint8)
            for bucket, idx in _groups(_buckets(tables, level, cls, p, act)):
                s[idx] = dec.decode(rows(cls, p, bucket), idx.size)
            sym[mask] = s
    # Magnitudes: symbols, with escapes completed; then signs, in the encoder's order.
    out, escaped = [], 0
    for c in range(3):
        out.append([low[c].astype(np.int32)] + [[None, None, None] for _ in range(levels)])
    order = [(k, o, c) for k, o, c in band_order(levels)]
    n_esc = sum(int((mags[c][k][o] == ESCAPE).sum()) for k, o, c in order)
    extra = _decode_numbers(dec, n_esc)
    if extra.size and extra.max() > (1 << 30):
        raise EntropyError("corrupted payload (coefficient out of range)")
    n_sign = sum(int(np.count_nonzero(mags[c][k][o])) for k, o, c in order)
    neg = dec.decode(constriction.stream.model.Uniform(2), n_sign).astype(bool) if n_sign else np.zeros(0, bool)
    taken = 0
    for k, o, c in order:
        sym = mags[c][k][o]
        v = sym.astype(np.int32)
        if sym.size:
            first = first_pass(sym.shape)
            for mask in (first, ~first):
                part = v[mask]
                esc = part == ESCAPE
                ne = int(esc.sum())
                part[esc] += extra[escaped : escaped + ne].astype(np.int32)
                escaped += ne
                nz = part > 0
                nn = int(nz.sum())
                part[nz] = np.where(neg[taken : taken + nn], -part[nz], part[nz])
                taken += nn
                v[mask] = part
        out[c][k][o] = v
    for c in range(3):
        out[c] = [out[c][0]] + [tuple(t) for t in out[c][1:]]
    return out
