"""Quantised wavelet subbands <-> bytes: range coding (constriction) with integer context tables.

Order: the low band first (its few values in Exp-Golomb form), then the detail bands from the
coarsest level to the finest, at each level HL, LH, HH, and in each of those Y, Cb, Cr. Each band
goes in three passes: positions with y and x even, then y and x odd, then the rest (the other half
of the checkerboard). A coefficient's magnitude is coded as a
symbol 0..14 or the escape 15, from one of BUCKETS tables chosen by its *activity*: a weighted sum
of magnitudes the decoder already has,

- its parent (the same orientation one level coarser, at half the coordinates) and the parent's
  four neighbours,
- its siblings (the same position in this level's bands of the same channel coded before it),
- the same band of luma (for Cb and Cr) and of Cb (for Cr),
- in the second pass, its four diagonal neighbours (all from the first pass), in the third its four
  direct neighbours (from the first two),

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

from dataclasses import dataclass, field
from pathlib import Path

import constriction
import numpy as np

from aecompress.bands import VIEWS, assign_pass, fit_shape, groups, split_pass
from aecompress.bitcoding import decode_numbers, encode_numbers, unzigzag, zigzag
from aecompress.errors import EntropyError
from aecompress.quantise import RECON_OFFSET, SCALE_SHAPE, quantise_scaled

SYMBOLS = 16
ESCAPE = SYMBOLS - 1
BUCKETS = 16
FEATURES = ("parent", "parent_neighbours", "siblings", "luma", "cb", "neighbours")
PASSES = 3
SIGN_CONTEXTS = 25
LEVEL_CLASSES = 6  # detail levels counted from the finest; coarser ones share the last class
CLASSES = 3 * LEVEL_CLASSES * 2  # channel x level class x (HL or LH, HH)
# Activity weights are at most MAX_WEIGHT, and a feature is at most a sum of four symbols (two
# for the siblings): activities fit in int16 and bucket lookups cover every possible value.
MAX_WEIGHT = 16
_FEATURE_MAX = (ESCAPE, 4 * ESCAPE, 2 * ESCAPE, ESCAPE, ESCAPE, 4 * ESCAPE)
MAX_ACTIVITY = MAX_WEIGHT * sum(_FEATURE_MAX)


@dataclass
class ContextTables:
    steps: np.ndarray  # (levels,) float64 base quantiser step of each quality level
    weights: np.ndarray  # (CLASSES, PASSES, len(FEATURES)) int64 activity weights per class and pass
    thresholds: np.ndarray  # (levels, CLASSES, PASSES, BUCKETS - 1) int64, increasing, the first >= 1
    counts: np.ndarray  # (levels, CLASSES, PASSES, BUCKETS, SYMBOLS) uint16, all >= 1
    signs: np.ndarray  # (2, 3, PASSES, SIGN_CONTEXTS, 2) uint16 (luma/chroma, orientation): +, - counts
    band_scale: np.ndarray | None = None  # quantise.SCALE_SHAPE step factors; None: all 1 (MSE steps)
    _luts: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def levels(self) -> int:
        return len(self.steps)

    def __getstate__(self) -> dict:
        # Lookup tables and coder models are caches (constriction's models do not pickle).
        return {**self.__dict__, "_luts": {}}

    def rows(self, level: int) -> _Rows:
        """The level's coder models, built once and kept: a batch reuses them file after file."""
        key = ("rows", level)
        if key not in self._luts:
            self._luts[key] = _Rows(self, level)
        return self._luts[key]

    @classmethod
    def load(cls, path: Path) -> ContextTables:
        with np.load(path) as z:
            t = cls(
                steps=z["steps"].astype(np.float64),
                weights=z["weights"].astype(np.int64),
                thresholds=z["thresholds"].astype(np.int64),
                counts=z["counts"].astype(np.uint16),
                signs=z["signs"].astype(np.uint16),
                band_scale=z["band_scale"].astype(np.float64) if "band_scale" in z.files else None,
            )
        t.check()
        return t

    def save(self, path: Path) -> None:
        self.check()
        extra = {} if self.band_scale is None else {"band_scale": np.asarray(self.band_scale, np.float64)}
        np.savez_compressed(
            path,
            **extra,
            steps=self.steps,
            weights=self.weights.astype(np.int32),
            thresholds=self.thresholds.astype(np.int64),
            counts=self.counts.astype(np.uint16),
            signs=self.signs.astype(np.uint16),
        )

    def check(self) -> None:
        n = self.levels
        w = self.weights
        if w.shape != (CLASSES, PASSES, len(FEATURES)) or w.min() < 0 or w.max() > MAX_WEIGHT:
            raise ValueError("context tables: bad weights")
        if self.thresholds.shape != (n, CLASSES, PASSES, BUCKETS - 1) or (np.diff(self.thresholds, axis=-1) < 0).any():
            raise ValueError("context tables: bad thresholds")
        if self.counts.shape != (n, CLASSES, PASSES, BUCKETS, SYMBOLS) or self.counts.min() < 1:
            raise ValueError("context tables: bad counts")
        if self.signs.shape != (2, 3, PASSES, SIGN_CONTEXTS, 2) or self.signs.min() < 1:
            raise ValueError("context tables: bad sign counts")
        b = self.band_scale
        if b is not None and (np.shape(b) != SCALE_SHAPE or not np.all(np.isfinite(b)) or np.min(b) <= 0):
            raise ValueError("context tables: bad band scale")


def band_class(channel: int, level_from_fine: int, orientation: int) -> int:
    lv = min(level_from_fine, LEVEL_CLASSES) - 1
    return (channel * LEVEL_CLASSES + lv) * 2 + (orientation == 2)


def band_order(levels: int) -> list[tuple[int, int, int]]:
    """(k, orientation, channel) in coding order; k indexes wavelet.forward's band list (1: coarsest)."""
    return [(k, o, c) for k in range(1, levels + 1) for o in range(3) for c in range(3)]


def _view_shape(shape: tuple[int, int], y0: int, x0: int) -> tuple[int, int]:
    return (shape[0] - y0 + 1) // 2, (shape[1] - x0 + 1) // 2


def _neighbour_sum(a: np.ndarray) -> np.ndarray:
    """Sum of the four neighbours of each position of a band of symbols (outside counts as 0):
    at most 60, so uint8."""
    s = np.zeros(a.shape, np.uint8)
    s[1:] += a[:-1]
    s[:-1] += a[1:]
    s[:, 1:] += a[:, :-1]
    s[:, :-1] += a[:, 1:]
    return s


def _pair_sums(e: np.ndarray, o: np.ndarray, y0: int, x0: int) -> tuple[np.ndarray, np.ndarray]:
    """The neighbours a position of the view (y0::2, x0::2) has in the earlier passes, as two
    sums of a pair each: e and o are the band's (0::2, 0::2) and (1::2, 1::2) views. Second
    pass, (1, 1): the main and the anti diagonal (both from e). Third pass: the vertical and
    the horizontal pair (one from e, the other from o)."""
    (h0, w0), (h1, w1) = e.shape, o.shape
    if (y0, x0) == (1, 1):
        p = fit_shape(e, (h1 + 1, w1 + 1))
        return p[:-1, :-1] + p[1:, 1:], p[:-1, 1:] + p[1:, :-1]
    if (y0, x0) == (0, 1):  # above and below are o, left and right e
        op = np.zeros((h0 + 1, w1), e.dtype)
        op[1 : h1 + 1] = o
        ep = fit_shape(e, (h0, w1 + 1))
        return op[:-1] + op[1:], ep[:, :-1] + ep[:, 1:]
    ep = fit_shape(e, (h1 + 1, w0))  # (1, 0): above and below are e, left and right o
    op = np.zeros((h1, w0 + 1), e.dtype)
    op[:, 1 : w1 + 1] = o
    return ep[:-1] + ep[1:], op[:, :-1] + op[:, 1:]


def _weighted_add(a: np.ndarray | None, v: np.ndarray, w: int) -> np.ndarray:
    """a + w * v in int16 (a new array when a is None)."""
    t = np.multiply(v, np.int16(w), dtype=np.int16)
    return t if a is None else np.add(a, t, out=a)


class _Band:
    """The contexts of one band's passes, worked out on the pass views (each a quarter of the
    band) rather than on full-size arrays: at a view's position (i, j) the parent is the parent
    band's (i, j), and the neighbours from earlier passes are shifted views of those passes.
    sym and signs are the band's arrays as they are being coded (earlier passes filled in);
    mags and sgn hold the bands coded before it."""

    def __init__(self, mags: list, sgn: list, k: int, o: int, c: int, levels: int) -> None:
        self.sym, self.signs = mags[c][k][o], sgn[c][k][o]
        self.shape = self.sym.shape
        self.cls = band_class(c, levels - k + 1, o)
        parent = mags[c][k - 1][o] if k > 1 else None
        # Per feature, its terms as (array, read at the pass's view or else at (i, j) itself).
        self.terms = (
            [(parent, False)] if parent is not None else [],
            [(_neighbour_sum(parent), False)] if parent is not None else [],
            [(mags[c][k][s], True) for s in range(o)],
            [(mags[0][k][o], True)] if c > 0 else [],
            [(mags[1][k][o], True)] if c > 1 else [],
        )
        self.parent_sign = sgn[c][k - 1][o] if k > 1 else None
        self.luma_sign = sgn[0][k][o] if c > 0 else None

    @classmethod
    def begin(cls, mags: list, sgn: list, k: int, o: int, c: int, levels: int, shape: tuple) -> _Band | None:
        """The coder's view of band (k, o, c) before its first pass: its symbols and signs start at
        zero and are filled in pass by pass (contexts read only earlier passes). None if empty."""
        mags[c][k][o] = np.zeros(shape, np.uint8)
        sgn[c][k][o] = np.zeros(shape, np.int8)
        return cls(mags, sgn, k, o, c, levels) if mags[c][k][o].size else None

    def buckets(self, tables: ContextTables, level: int, p: int) -> np.ndarray:
        """Pass p's table rows (uint8), in coding order."""
        return _buckets(tables, level, self.cls, p, self.activity(tables.weights[self.cls, p], p))

    def set_signs(self, p: int, nonzero: np.ndarray, negative: np.ndarray) -> None:
        """Pass p's signs once its magnitudes are known: -1 or +1 where nonzero, else 0."""
        sp = np.zeros(nonzero.size, np.int8)
        sp[nonzero] = np.where(negative, -1, 1)
        assign_pass(self.signs, p, sp)

    def _feature(self, f: int, y0: int, x0: int, shape: tuple[int, int]) -> np.ndarray | None:
        out = None
        for src, strided in self.terms[f]:
            v = fit_shape(src[y0::2, x0::2] if strided else src, shape)
            out = v if out is None else out + v
        return out

    def _pairs(self, a: np.ndarray, y0: int, x0: int) -> tuple[np.ndarray, np.ndarray]:
        return _pair_sums(a[0::2, 0::2], a[1::2, 1::2], y0, x0)

    def activity(self, weights: np.ndarray, p: int) -> np.ndarray:
        """Pass p's activities in coding order (int16: at most 16 x (15 + 60 + 30 + 15 + 15 +
        60)), touching only the features with a nonzero weight (the coder's hot path)."""
        parts = []
        for y0, x0 in VIEWS[p]:
            shape = _view_shape(self.shape, y0, x0)
            a = None
            for f, w in enumerate(weights[:-1]):
                v = self._feature(f, y0, x0, shape) if w else None
                if v is not None:
                    a = _weighted_add(a, v, w)
            if p and weights[-1]:
                first, second = self._pairs(self.sym, y0, x0)
                a = _weighted_add(a, first + second, weights[-1])
            parts.append(np.zeros(shape[0] * shape[1], np.int16) if a is None else a.ravel())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def features(self, p: int) -> np.ndarray:
        """(len(FEATURES), n) int32: every feature of pass p's positions (for fitting)."""
        parts = []
        for y0, x0 in VIEWS[p]:
            shape = _view_shape(self.shape, y0, x0)
            f = np.zeros((len(FEATURES),) + shape, np.int32)
            for i in range(len(FEATURES) - 1):
                v = self._feature(i, y0, x0, shape)
                if v is not None:
                    f[i] = v
            if p:
                first, second = self._pairs(self.sym, y0, x0)
                f[-1] = first + second
            parts.append(f.reshape(len(FEATURES), -1))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def sign_contexts(self, p: int) -> np.ndarray:
        """Sign context (0..SIGN_CONTEXTS-1) of pass p's positions from signs already decoded: the
        parent's and (for chroma) luma's in the first pass; the two diagonal pairs' sums in the
        second; the vertical and horizontal pairs' sums in the third (edges give neighbours along
        them the same sign, across them opposite ones)."""
        if p == 0:
            shape = _view_shape(self.shape, 0, 0)
            ctx = np.full(shape, 4, np.int8)  # (parent + 1) * 3 + luma + 1 with both 0
            if self.parent_sign is not None:
                ctx += 3 * fit_shape(self.parent_sign, shape)
            if self.luma_sign is not None:
                ctx += fit_shape(self.luma_sign[0::2, 0::2], shape)
            return ctx.ravel()
        parts = []
        for y0, x0 in VIEWS[p]:
            first, second = self._pairs(self.signs, y0, x0)
            parts.append(((first + 2) * 5 + second + 2).ravel())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def activity(weights: np.ndarray, feats: np.ndarray, neighbours: np.ndarray | None) -> np.ndarray:
    """Integer activity of positions: feats (5, n), neighbours (n,) or None in the first pass.
    The same integers as the coder's _Band.activity (tested), for fitting thresholds."""
    # int32 is exact: activities are at most MAX_ACTIVITY.
    a = weights[:-1].astype(np.int32) @ feats.astype(np.int32) if len(feats) else np.zeros(0, np.int32)
    if neighbours is not None:
        a += np.int32(weights[-1]) * neighbours.astype(np.int32)
    return a


def analyse(bands: list, levels: int):
    """For fitting tables: per band and pass of one channel set, yields (class, pass, features
    (6, n), symbols (n,), (channel, orientation, sign contexts and negative flags of the nonzero
    ones)), exactly the contexts the coder sees. bands: per channel, as from
    quantise.quantise_bands."""
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    sgn = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    for k, o, c in band_order(levels):
        q = bands[c][k][o]
        mags[c][k][o] = np.minimum(np.abs(q), ESCAPE).astype(np.uint8)
        sgn[c][k][o] = np.sign(q).astype(np.int8)
        if q.size == 0:
            continue
        band = _Band(mags, sgn, k, o, c, levels)
        for p in range(PASSES):
            s = split_pass(mags[c][k][o], p)
            nz = s > 0
            # Contexts read only earlier passes' positions, so the whole band's signs may be there.
            ctx = band.sign_contexts(p)[nz]
            yield band.cls, p, band.features(p), s, (c, o, ctx, split_pass(q, p)[nz] < 0)


def _buckets(tables: ContextTables, level: int, cls: int, p: int, act: np.ndarray) -> np.ndarray:
    """The number of thresholds <= each activity, by table lookup over every activity the
    weights allow (a binary search per value took a tenth of the coder's time)."""
    key = (level, cls, p)
    lut = tables._luts.get(key)
    if lut is None:
        t = tables.thresholds[level, cls, p]
        lut = tables._luts[key] = np.searchsorted(t, np.arange(MAX_ACTIVITY + 1), side="right").astype(np.uint8)
    return lut[act]


# Signs are coded one call a pass with per-symbol probabilities: grouping them by context took
# thousands of small calls.
_PER_SYMBOL = constriction.stream.model.Categorical(perfect=False)


class _Rows:
    """constriction models of one level's tables, built once per (class, pass, bucket)."""

    def __init__(self, tables: ContextTables, level: int) -> None:
        self.counts = tables.counts[level]
        self.signs = tables.signs
        self._cache: dict = {}

    def sign_probs(self, chroma: bool, o: int, p: int) -> np.ndarray:
        """(SIGN_CONTEXTS, 2) float64: each context's counts over their integer sum."""
        key = ("sign", chroma, o, p)
        if key not in self._cache:
            rows = self.signs[int(chroma), o, p].astype(np.float64)
            self._cache[key] = rows / rows.sum(axis=1, keepdims=True)
        return self._cache[key]

    def bits(self, cls: int, p: int) -> np.ndarray:
        """(BUCKETS, SYMBOLS) code lengths in bits, for the encoder's choices only."""
        key = ("bits", cls, p)
        if key not in self._cache:
            c = self.counts[cls, p].astype(np.float64)
            self._cache[key] = -np.log2(c / c.sum(axis=1, keepdims=True))
        return self._cache[key]

    def __call__(self, cls: int, p: int, bucket: int) -> np.ndarray:
        key = (cls, p, bucket)
        if key not in self._cache:
            row = self.counts[cls, p, bucket].astype(np.float64)
            self._cache[key] = constriction.stream.model.Categorical(row / row.sum(), perfect=False)
        return self._cache[key]


def encode(
    bands: list,
    levels: int,
    tables: ContextTables,
    level: int,
    scaled: list | None = None,
    dry_run: bool = False,
    keep: bool = True,
) -> bytes:
    """bands: per channel (Y, Cb, Cr), [LL, (HL, LH, HH) coarsest .. finest] of integers.

    With scaled (the same layout, each coefficient divided by its band's step), the encoder
    chooses each detail coefficient's integer by rate and distortion (choose_magnitudes) with
    the table that will code it, and writes its choices into bands (whose detail entries may
    then be anything: only their LL is read). Entries of scaled held in lists are let go as
    they are used; keep=False does not keep the choices either (the compressor's memory: the
    contexts need only each band's capped magnitudes and signs). dry_run: only the choices
    (for training), no bytes."""
    enc = constriction.stream.queue.RangeEncoder()
    encode_numbers(enc, zigzag(np.concatenate([bands[c][0].ravel() for c in range(3)])))
    rows = tables.rows(level)
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    sgn = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    escapes = []
    if scaled is not None:
        for c in range(3):
            bands[c] = [bands[c][0]] + [[None, None, None] for _ in range(levels)]
    for k, o, c in band_order(levels):
        q = None
        if scaled is not None:
            x_band = scaled[c][k][o]
            if isinstance(scaled[c][k], list):
                scaled[c][k][o] = None
            shape = x_band.shape
            if keep:
                q = bands[c][k][o] = np.zeros(shape, np.int32)
        else:
            q = bands[c][k][o]
            shape = q.shape
        band = _Band.begin(mags, sgn, k, o, c, levels, shape)
        if band is None:
            continue
        cls = band.cls
        for p in range(PASSES):
            b = band.buckets(tables, level, p)
            if scaled is not None:
                x = split_pass(x_band, p)
                ap = choose_magnitudes(np.abs(x), b, rows.bits(cls, p))
                neg = x < 0
                if q is not None:
                    assign_pass(q, p, np.where(neg, -ap, ap))
            else:
                qp = split_pass(q, p)
                ap, neg = np.abs(qp), qp < 0
            s = np.minimum(ap, ESCAPE).astype(np.uint8)
            assign_pass(band.sym, p, s)
            if dry_run:
                continue
            for bucket, idx, _ in groups(b, BUCKETS):
                enc.encode(s[idx].astype(np.int32), rows(cls, p, bucket))
            esc = s == ESCAPE
            if esc.any():
                escapes.append(ap[esc] - ESCAPE)
            nz = s > 0
            neg = neg[nz]
            band.set_signs(p, nz, neg)
            ctx = band.sign_contexts(p)[nz]
            if ctx.size:  # one call a pass: each sign with its context's probabilities
                enc.encode(neg.astype(np.int32), _PER_SYMBOL, rows.sign_probs(c > 0, o, p)[ctx])
    if dry_run:
        if scaled is not None:
            for c in range(3):
                bands[c] = [bands[c][0]] + [tuple(t) for t in bands[c][1:]]
        return b""
    encode_numbers(enc, np.concatenate(escapes) if escapes else np.zeros(0, np.int64))
    if scaled is not None:
        for c in range(3):
            bands[c] = [bands[c][0]] + [tuple(t) for t in bands[c][1:]]
    return enc.get_compressed().astype("<u4").tobytes()


# Rate-distortion trade-off of the encoder's choices, in units of a band's step: a bit is worth
# LAMBDA step**2 of squared error. Every band's step is the level's base step divided by its
# synthesis gain, so one value serves all bands and levels (high-rate theory: 2 ln 2 / 12 = 0.116).
LAMBDA = 0.116


def choose_magnitudes(x: np.ndarray, b: np.ndarray, bits: np.ndarray, lam: float | None = None) -> np.ndarray:
    """Per coefficient of magnitude x (in steps, float32), the integer among the nearest
    reconstruction, the one below it and 0 that costs least in squared error + lam * bits
    (magnitude from its table row b, plus a sign bit). Magnitudes at or near the escape keep
    the dead-zone quantiser's."""
    lam = LAMBDA if lam is None else lam
    near = np.maximum(np.floor(x - RECON_OFFSET + 0.5), 0).astype(np.int32)
    out = np.zeros(x.shape, np.int32)
    # Only where the nearest level is not zero is there a choice (most coefficients are small).
    idx = np.flatnonzero(near)
    x, near, b = x[idx], np.minimum(near[idx], ESCAPE - 1), b[idx]
    q0 = quantise_scaled(x)
    best, best_cost = np.zeros_like(near), x.astype(np.float64) ** 2 + lam * bits[b, 0]
    for cand in (near, np.maximum(near - 1, 0)):
        r = np.where(cand > 0, cand + RECON_OFFSET, 0.0)
        cost = (x - r) ** 2 + lam * (bits[b, cand] + (cand > 0))
        better = cost < best_cost
        best = np.where(better, cand, best)
        best_cost = np.where(better, cost, best_cost)
    out[idx] = np.where(q0 >= ESCAPE - 1, q0, best)
    return out


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
    low = unzigzag(decode_numbers(dec, 3 * n_low)).reshape(3, *low_shape)
    rows = tables.rows(level)
    mags = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    sgn = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    for k, o, c in band_order(levels):
        band = _Band.begin(mags, sgn, k, o, c, levels, shapes[k][o])
        if band is None:
            continue
        cls = band.cls
        for p in range(PASSES):
            b = band.buckets(tables, level, p)
            s = np.empty(b.size, dtype=np.uint8)
            for bucket, idx, n in groups(b, BUCKETS):
                s[idx] = dec.decode(rows(cls, p, bucket), n)
            assign_pass(band.sym, p, s)
            nz = s > 0
            ctx = band.sign_contexts(p)[nz]
            neg = np.zeros(ctx.size, dtype=np.int8)
            if ctx.size:
                neg[:] = dec.decode(_PER_SYMBOL, rows.sign_probs(c > 0, o, p)[ctx])
            band.set_signs(p, nz, neg)
    # Escaped magnitudes come last, in the encoder's order (band, pass, position).
    order = band_order(levels)
    n_escs = [int(np.count_nonzero(mags[c][k][o] == ESCAPE)) for k, o, c in order]
    extra = decode_numbers(dec, sum(n_escs))
    if extra.size and extra.max() > (1 << 30):
        raise EntropyError("corrupted payload (coefficient out of range)")
    out = [[low[c].astype(np.int32)] + [[None, None, None] for _ in range(levels)] for c in range(3)]
    taken = 0
    for (k, o, c), n_esc in zip(order, n_escs, strict=True):
        v = mags[c][k][o].astype(np.int32)
        if n_esc:
            for p in range(PASSES):
                part = split_pass(v, p)
                esc = part == ESCAPE
                ne = int(esc.sum())
                part[esc] += extra[taken : taken + ne].astype(np.int32)
                taken += ne
                assign_pass(v, p, part)
        out[c][k][o] = v * sgn[c][k][o]
    for c in range(3):
        out[c] = [out[c][0]] + [tuple(t) for t in out[c][1:]]
    return out
