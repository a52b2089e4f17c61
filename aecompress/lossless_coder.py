"""Reversible-wavelet subbands <-> bytes, one range-coded section per resolution, with integer
context tables. The lossless (and near-lossless) counterpart of aecompress.entropy.

Sections: the low band of every plane first, then one per detail level from the coarsest, each
its own range-coder stream. A preview at 1/2^j needs only the first `levels + 1 - j` sections:
the rest of the file is not even read.

A detail section (version 5) starts with each plane's kernel at that level, then the
range-coded part, then the signs of its nonzero coefficients as raw bits. In the range-coded
part, for each orientation HL, LH, HH and each plane: a chroma band's slopes (it is coded as its
difference from multiples of the same band of luma, and for Cr of Cb: what the colour transform
leaves correlated), then the band in six passes
(PASS_VIEWS), each later one seeing more decoded neighbours (bands under SMALL coefficients in
one). A coefficient's magnitude m is split as `hi = m >> shift` and the low `shift` bits
(shift is 0 for 8-bit images; for 16-bit ones it is chosen per plane so that hi looks like an
8-bit image's, and the low bits, which are mostly sensor noise there, go raw). hi is coded as
a *token*: hi itself below 16, above that its bit length and the two bits below its leading
one (4 tokens per octave), the remaining bits raw. The token's table is one of BUCKETS, chosen
by an integer activity: a weighted sum of the hi magnitudes the decoder already has (parent,
the parent's neighbours, siblings, luma and Cb at the same position, the neighbours from
earlier passes, each capped at CAP) and of the steps of the low band beside the level, which
the decoder has before the level, times the pass's scale (sent first: the tables fitted to
this picture's texture). Then the low bits go raw. Signs go raw too, after the range-coded part
(sign contexts from the neighbours saved 0.14% and cost a third of the decoding time). Version 4
(0.4 and 0.5) differs only there: one kernel for all, no slopes or scales, and the signs sixteen
to a uniform symbol inside the range-coded stream; it is still decoded.

Weights, thresholds and counts are integers fitted to training photographs
(training/lossless_model.py); the coder sees the counts over their integer sum, so decoding is
bit-exact on every machine. The layout is specified in docs/format.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import constriction
import numpy as np

from aecompress import loops, reversible
from aecompress.bands import fit_shape
from aecompress.bitcoding import CHUNK, code_bits, decode_numbers, encode_numbers, unzigzag, zigzag

DIRECT = 16  # hi below this is its own token
MAX_EXP = 26  # magnitudes stay below 2^(MAX_EXP + 1)
TOKENS = DIRECT + 4 * (MAX_EXP - 3)
BUCKETS = 24
# A band goes in six passes, each a set of strided views (y0, x0, stride) of it: the even-even
# quarter first, itself in three steps (every fourth position both ways, the diagonal
# middles, the rest), then the odd-odd quarter, then the two remaining quarters. Each later pass
# sees more of its neighbours decoded: the last sees all eight.
PASS_VIEWS = (
    ((0, 0, 4),),
    ((2, 2, 4),),
    ((0, 2, 4), (2, 0, 4)),
    ((1, 1, 2),),
    ((0, 1, 2),),
    ((1, 0, 2),),
    ((0, 0, 1),),  # a small band in one pass: fewer coder calls, and its few bits barely change
)
PASSES = len(PASS_VIEWS)
SMALL = 512  # bands of fewer coefficients go in the one pass
FEATURES = ("parent", "parent_neighbours", "siblings", "luma", "cb", "direct", "diagonal", "far", "low_h", "low_v")
_OFFSETS = (
    ((-1, 0), (1, 0), (0, -1), (0, 1)),
    ((-1, -1), (-1, 1), (1, -1), (1, 1)),
    ((-2, 0), (2, 0), (0, -2), (0, 2), (-2, -2), (-2, 2), (2, -2), (2, 2)),
)
_PAD = 2
LEVEL_CLASSES = 6
KINDS = 3  # the plane's kind: 0 luma (also grey and alpha), 1 Cb, 2 Cr
CLASSES = KINDS * LEVEL_CLASSES * 2
CAP = 4095  # magnitudes counted in an activity are capped here: activities fit in int32
MAX_WEIGHT = 64
# Version 5: each band-pass scales its activities by SCALES[i] / 16 (a quarter octave apart),
# i chosen by the encoder and sent first: the tables' scale fitted to this image's texture.
SCALES = tuple(round(16 * 2 ** (i / 4)) for i in range(-8, 9))
NEUTRAL = SCALES.index(16)
SCALE_SAMPLE = 1024  # coefficients of a pass the encoder tries the scales on
SCALE_MIN = 64  # passes of fewer coefficients keep the neutral scale
SLOPE_SAMPLE = 2048  # coefficients of a band the encoder fits a chroma prediction on
SLOPES = tuple(range(-8, 9))  # a chroma band's prediction: luma's same band x SLOPES[i] / 8
NO_SLOPE = SLOPES.index(0)
LENGTH_BITS = 16  # the encoder's code lengths are fixed-point with this many fraction bits
_SECTION_HEAD = 4  # version 5: the range-coded part's length (u32), after the planes' kernel bytes


class LosslessError(ValueError):
    """The payload does not decode to valid subbands."""


def band_class(kind: int, level_from_fine: int, orientation: int) -> int:
    return (kind * LEVEL_CLASSES + min(level_from_fine, LEVEL_CLASSES) - 1) * 2 + (orientation == 2)


@dataclass
class LosslessTables:
    weights: np.ndarray  # (CLASSES, PASSES, len(FEATURES)) int64, 0..MAX_WEIGHT
    thresholds: np.ndarray  # (CLASSES, PASSES, BUCKETS - 1) int64, non-decreasing
    counts: np.ndarray  # (CLASSES, PASSES, BUCKETS, TOKENS) int64, all >= 1
    _models: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_models": {}}  # constriction's models do not pickle

    @classmethod
    def load(cls, path: Path) -> LosslessTables:
        with np.load(path) as z:
            t = cls(*(z[k].astype(np.int64) for k in ("weights", "thresholds", "counts")))
        t.check()
        return t

    def save(self, path: Path) -> None:
        self.check()
        np.savez_compressed(
            path,
            weights=self.weights.astype(np.int32),
            thresholds=self.thresholds,
            counts=self.counts.astype(np.uint32),
        )

    def check(self) -> None:
        w, t, c = self.weights, self.thresholds, self.counts
        if w.shape != (CLASSES, PASSES, len(FEATURES)) or w.min() < 0 or w.max() > MAX_WEIGHT:
            raise ValueError("lossless tables: bad weights")
        if t.shape != (CLASSES, PASSES, BUCKETS - 1) or (np.diff(t, axis=-1) < 0).any():
            raise ValueError("lossless tables: bad thresholds")
        if c.shape != (CLASSES, PASSES, BUCKETS, TOKENS) or c.min() < 1 or c.max() >= 1 << 32:
            raise ValueError("lossless tables: bad counts")

    def models(self, cls: int, p: int) -> list:
        """The coder's model of each bucket of a class and pass (made on first use)."""
        key = (cls, p)
        if key not in self._models:
            rows = self.counts[cls, p].astype(np.float64)
            self._models[key] = [constriction.stream.model.Categorical(row / row.sum(), perfect=False) for row in rows]
        return self._models[key]

    def code_lengths(self, cls: int, p: int) -> np.ndarray:
        """(BUCKETS, TOKENS) int64 bits of each token in each bucket in units of 2^-LENGTH_BITS:
        for the encoder's choices only. Integers, so that every way of summing them agrees."""
        key = ("bits", cls, p)
        if key not in self._models:
            row = self.counts[cls, p].astype(np.float64)
            bits = -np.log2(row / row.sum(axis=-1, keepdims=True))
            self._models[key] = np.rint(bits * (1 << LENGTH_BITS)).astype(np.int64)
        return self._models[key]

    def weights32(self, cls: int, p: int) -> np.ndarray:
        key = ("w32", cls, p)
        if key not in self._models:
            self._models[key] = self.weights[cls, p].astype(np.int32)
        return self._models[key]

    def scale_edges(self, cls: int, p: int) -> np.ndarray:
        """(len(SCALES), BUCKETS - 1): the least activity that reaches each threshold under each
        scale, ceil((16 t - 8) / SCALES[i]) (the encoder's scale search)."""
        key = ("edges", cls, p)
        if key not in self._models:
            th = self.thresholds[cls, p].astype(np.int64)[None, :]
            m = np.array(SCALES, np.int64)[:, None]
            self._models[key] = -((8 - 16 * th) // m)
        return self._models[key]

    def lut(self, cls: int, p: int) -> np.ndarray:
        """The number of thresholds <= each activity up to the last threshold (uint8): buckets by
        lookup (a binary search per value was a sixth of the decoder's time)."""
        key = ("lut", cls, p)
        if key not in self._models:
            t = self.thresholds[cls, p]
            self._models[key] = np.searchsorted(t, np.arange(int(t[-1]) + 1), side="right").astype(np.uint8)
        return self._models[key]

    def buckets(self, cls: int, p: int, act: np.ndarray) -> np.ndarray:
        """Each activity's bucket (act is capped in place)."""
        lut = self.lut(cls, p)
        return lut[np.minimum(act, lut.size - 1, out=act)]

    def bucket_runs(self, cls: int, p: int, act: np.ndarray, scale: int) -> tuple[np.ndarray | None, list]:
        """The buckets of act scaled by SCALES[scale] / 16 as runs: (order, [(bucket, start, end),
        ...] for each bucket present, ascending). order lists the positions grouped by bucket,
        in coding order within each (None where one bucket holds them all); bucket b's are
        order[start:end]. act may change."""
        if loops.compiled is not None:
            order = np.empty(act.size, np.int32)
            runs = loops.compiled.bucket_order(act, SCALES[scale], self.lut(cls, p), order, np.empty(BUCKETS, np.int64))
            return (None if len(runs) == 1 else order), runs
        b = self.buckets(cls, p, _scaled(act, scale))
        counts = np.bincount(b, minlength=BUCKETS)
        present = np.flatnonzero(counts)
        if present.size == 1:
            return None, [(int(present[0]), 0, act.size)]
        ends = np.cumsum(counts[present])
        order = np.argsort(b, kind="stable")  # a radix sort for 8-bit keys
        return order, list(zip(present.tolist(), (ends - counts[present]).tolist(), ends.tolist(), strict=True))


def to_tokens(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes (< 2^(MAX_EXP + 1)) -> (token, positions of tokens >= DIRECT, their numbers
    of raw bits, their raw bits)."""
    tok = np.minimum(m, DIRECT).astype(np.int32)
    big = np.flatnonzero(tok == DIRECT)
    v = m[big].astype(np.int64)
    e = np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1  # exact: bit length - 1
    nraw = e - 2
    tok[big] = DIRECT + 4 * (e - 4) + ((v >> nraw) & 3)
    return tok, big, nraw.astype(np.int32), (v & ((np.int64(1) << nraw) - 1)).astype(np.uint64)


def from_tokens(tok: np.ndarray, big: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Inverse of to_tokens: tokens (int32, turned into the magnitudes in place), positions of
    those >= DIRECT, their raw bits."""
    m = tok
    if big.size:
        t = tok[big].astype(np.int64) - DIRECT
        nraw = t // 4 + 2
        m[big] = (((4 | (t & 3)) << nraw) | raw.astype(np.int64)).astype(np.int32)
    return m


def raw_bits(tok_big: np.ndarray) -> np.ndarray:
    """The number of raw bits after each token >= DIRECT."""
    return ((tok_big.astype(np.int32) - DIRECT) // 4 + 2).astype(np.int32)


def choose_shift(finest_hh: np.ndarray, bits: int) -> int:
    """How many low bits of a plane's magnitudes go raw: 0 for 8-bit images; for deeper ones
    enough that the finest diagonal band's typical magnitude is an 8-bit photograph's (about 2)."""
    if bits <= 8 or finest_hh.size == 0:
        return 0
    med = int(np.median(np.abs(finest_hh)))
    return int(min(max(med.bit_length() - 2, 0), bits - 8))


@dataclass
class Plane:
    """A plane's kind (0 luma, grey or alpha; 1 Cb; 2 Cr) and how many low bits go raw."""

    kind: int
    shift: int


def passes_for(shape: tuple[int, int]) -> tuple[int, ...]:
    return (PASSES - 1,) if shape[0] * shape[1] < SMALL else tuple(range(PASSES - 1))


def pass_size(shape: tuple[int, int], p: int) -> int:
    return sum(-(-(shape[0] - y) // s) * -(-(shape[1] - x) // s) for y, x, s in PASS_VIEWS[p])


class _Band:
    """One band being coded: its decoded hi magnitudes so far (capped, zero where not yet
    decoded, in a zero border of _PAD) and the bands its contexts read."""

    def __init__(self, ctx: _Context, c: int, k: int, o: int, shape: tuple[int, int]) -> None:
        self.shape = shape
        h, w = shape
        self.cur = np.zeros((h + 2 * _PAD, w + 2 * _PAD), np.int32)
        # Context sources stay int16 (capped at CAP; sums of four fit too): the activity multiplies
        # them by int32 weights, so a 24-megapixel band needs no int32 copies of them.
        self.parent = ctx.mags[c][k - 1][o] if k > 1 else None
        self.parent_nb = None
        if self.parent is not None:
            par = self.parent  # its four neighbours' sum, zero beyond the edges (no padded copy)
            nb = self.parent_nb = np.zeros_like(par)
            nb[1:] += par[:-1]
            nb[:-1] += par[1:]
            nb[:, 1:] += par[:, :-1]
            nb[:, :-1] += par[:, 1:]
        self.siblings = None
        if o > 0:
            sib = fit_shape(ctx.mags[c][k][0], shape)
            self.siblings = sib + fit_shape(ctx.mags[c][k][1], shape) if o == 2 else sib
        kind = ctx.planes[c].kind
        self.luma = self.cb = None
        if kind in (1, 2) and ctx.luma is not None:
            self.luma = fit_shape(ctx.mags[ctx.luma][k][o], shape)
        if kind == 2 and ctx.cb is not None:
            self.cb = fit_shape(ctx.mags[ctx.cb][k][o], shape)
        # The low band beside this level, which the decoder already has: its steps across and
        # along a detail coefficient's position tell where edges are.
        steps_h, steps_v = ctx.low_steps(c)
        self.low_h = fit_shape(steps_h, shape)
        self.low_v = fit_shape(steps_v, shape)

    @property
    def mags(self) -> np.ndarray:
        h, w = self.shape
        return self.cur[_PAD : _PAD + h, _PAD : _PAD + w]

    def take(self, a: np.ndarray, p: int) -> np.ndarray:
        """Pass p's positions of a band-shaped array, in coding order (1-D)."""
        parts = [a[y::s, x::s].ravel() for y, x, s in PASS_VIEWS[p]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def put(self, a: np.ndarray, p: int, v: np.ndarray) -> None:
        start = 0
        for y, x, s in PASS_VIEWS[p]:
            view = a[y::s, x::s]
            view[...] = v[start : start + view.size].reshape(view.shape)
            start += view.size

    def features(self, p: int) -> list[np.ndarray | None]:
        """Pass p's feature values, each 1-D in coding order (None where the band has none)."""
        out: list[np.ndarray | None] = [None] * len(FEATURES)
        if self.parent is not None:
            out[0] = self._parent_view(self.parent, p)
            out[1] = self._parent_view(self.parent_nb, p)
        for i, src in ((2, self.siblings), (3, self.luma), (4, self.cb)):
            if src is not None:
                out[i] = self.take(src, p)
        for i, offsets in enumerate(_OFFSETS):
            out[5 + i] = self._neighbours(offsets, p)
        out[8] = self.take(self.low_h, p)
        out[9] = self.take(self.low_v, p)
        return out

    def _parent_view(self, par: np.ndarray, p: int) -> np.ndarray:
        parts = []
        for y, x, s in PASS_VIEWS[p]:
            ny, nx = -(-(self.shape[0] - y) // s), -(-(self.shape[1] - x) // s)
            parts.append(_parent_at(par, y, x, s, ny, nx).ravel())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _neighbours(self, offsets, p: int) -> np.ndarray:
        src = self.cur
        parts = []
        h, w = self.shape
        for y, x, s in PASS_VIEWS[p]:
            ny, nx = -(-(h - y) // s), -(-(w - x) // s)
            acc = np.zeros((ny, nx), np.int32)
            for dy, dx in offsets:
                y1, x1 = _PAD + y + dy, _PAD + x + dx
                acc += src[y1 : y1 + s * (ny - 1) + 1 : s, x1 : x1 + s * (nx - 1) + 1 : s]
            parts.append(acc.ravel())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def done(self, p: int, hp: np.ndarray) -> None:
        """Pass p decoded: its hi magnitudes."""
        self.put(self.mags, p, np.minimum(hp, CAP))

    def activity(self, weights: np.ndarray, p: int) -> np.ndarray:
        """Pass p's activities (int32): activity(weights, self.features(p)) without the feature
        arrays (the coder's inner loop), in C where it is compiled."""
        if loops.compiled is None:
            return self.activity_numpy(weights, p)
        out = np.empty(pass_size(self.shape, p), np.int32)
        loops.compiled.activity(out, self.cur, PASS_VIEWS[p], np.asarray(weights, np.int32), self.sources())
        return out

    def sources(self) -> tuple:
        """What the C loops read for the static features, in their order."""
        return (self.parent, self.parent_nb, self.siblings, self.luma, self.cb, self.low_h, self.low_v)

    def activity_numpy(self, weights: np.ndarray, p: int) -> np.ndarray:
        """activity() view by view in NumPy (int32): the reference."""
        w = [np.int32(v) for v in weights]  # int16 sources times an int32 weight: int32 products
        parts = []
        h, wd = self.shape
        statics = ((2, self.siblings), (3, self.luma), (4, self.cb), (8, self.low_h), (9, self.low_v))
        for y, x, s in PASS_VIEWS[p]:
            ny, nx = -(-(h - y) // s), -(-(wd - x) // s)
            act = np.zeros((ny, nx), np.int32)
            if self.parent is not None:
                for i, par in ((0, self.parent), (1, self.parent_nb)):
                    if w[i]:
                        act += w[i] * _parent_at(par, y, x, s, ny, nx)
            for i, src in statics:
                if src is not None and w[i]:
                    act += w[i] * src[y::s, x::s]
            for i, offsets in enumerate(_OFFSETS):
                if w[5 + i]:
                    nb = np.zeros((ny, nx), np.int32)
                    for dy, dx in offsets:
                        y1, x1 = _PAD + y + dy, _PAD + x + dx
                        nb += self.cur[y1 : y1 + s * (ny - 1) + 1 : s, x1 : x1 + s * (nx - 1) + 1 : s]
                    act += w[5 + i] * nb
            parts.append(act.ravel())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _steps(low: np.ndarray, axis: int, shift: int) -> np.ndarray:
    """|low[i + 1] - low[i]| along an axis (0 at the last), >> shift, capped (int16)."""
    a = low.astype(np.int32, copy=False)
    d = np.zeros(a.shape, np.int32)
    if axis == 1:
        np.subtract(a[:, 1:], a[:, :-1], out=d[:, :-1])
    else:
        np.subtract(a[1:], a[:-1], out=d[:-1])
    np.abs(d, out=d)
    if shift:
        d >>= shift
    return np.minimum(d, CAP, out=d).astype(np.int16)


def _parent_at(par: np.ndarray, y: int, x: int, s: int, ny: int, nx: int) -> np.ndarray:
    """The parent band's values at a view's positions (the parent of (y, x) is (y // 2, x // 2))."""
    if s == 1:
        return fit_shape(np.repeat(np.repeat(par, 2, axis=0), 2, axis=1), (ny, nx))
    return fit_shape(par[y // 2 :: s // 2, x // 2 :: s // 2][:ny, :nx], (ny, nx))


class _Context:
    """The hi magnitudes (capped) of the bands decoded so far, per plane and level."""

    def __init__(self, planes: list[Plane], levels: int) -> None:
        self.planes, self.levels = planes, levels
        self.mags: list[list] = [[None] + [[None, None, None] for _ in range(levels)] for _ in planes]
        self.luma = next((i for i, p in enumerate(planes) if p.kind == 0), None)
        self.cb = next((i for i, p in enumerate(planes) if p.kind == 1), None)
        self.lows: list[np.ndarray] = []  # per plane, the low band beside the level being coded
        self._steps: dict = {}

    def band(self, c: int, k: int, o: int, shape: tuple[int, int]) -> tuple[_Band, int]:
        return _Band(self, c, k, o, shape), band_class(self.planes[c].kind, self.levels - k + 1, o)

    def low_steps(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Plane c's low band's steps across and along (computed once a level, for all three
        orientations)."""
        if c not in self._steps:
            shift = self.planes[c].shift
            self._steps[c] = (_steps(self.lows[c], 1, shift), _steps(self.lows[c], 0, shift))
        return self._steps[c]

    def start_level(self, k: int, lows: list[np.ndarray]) -> None:
        """Level k begins: the low bands beside it; magnitudes older than its parents go."""
        self.lows = lows
        self._steps: dict = {}
        if k > 2:
            for c in range(len(self.planes)):
                self.mags[c][k - 2] = None

    def end_level(self, k: int) -> None:
        """Level k is coded: its low bands' steps and its parents' magnitudes go before the
        inverse wavelet needs the memory (all magnitudes after the last level)."""
        self.lows, self._steps = [], {}
        for c in range(len(self.planes)):
            self.mags[c][k - 1] = None
            if k == self.levels:
                self.mags[c][k] = None

    def finish(self, c: int, k: int, o: int, band: _Band) -> None:
        # int16 (CAP fits): a 24-megapixel image keeps two levels of these, not two int32 copies
        self.mags[c][k][o] = band.mags.astype(np.int16)


def activity(weights: np.ndarray, feats: list[np.ndarray | None], n: int) -> np.ndarray:
    """The weighted sum of a pass's features (int32: at most MAX_WEIGHT * 27 * CAP)."""
    act = np.zeros(n, np.int32)
    for w, f in zip(weights, feats, strict=True):
        if f is not None and w:
            act += int(w) * f.astype(np.int32)
    return act


def walk(bands: list, planes: list[Plane], levels: int, lows: list):
    """Every detail band-pass in coding order, as the coder sees it (chroma bands as their
    residuals): yields (class, pass, features, hi magnitudes of the pass). For fitting the
    tables (training/lossless_model.py)."""
    ctx = _Context(planes, levels)
    for k in range(1, levels + 1):
        ctx.start_level(k, [lows[c][k - 1] for c in range(len(planes))])
        for o in range(3):
            for c, (v, _) in enumerate(_residuals(bands, planes, ctx, k, o)):
                pl = planes[c]
                band, cls = ctx.band(c, k, o, v.shape)
                for p in passes_for(v.shape):
                    hp = np.abs(band.take(v, p).astype(np.int64)) >> pl.shift
                    yield cls, p, band.features(p), hp
                    band.done(p, hp)
                ctx.finish(c, k, o, band)


def encode(
    bands: list, planes: list[Plane], levels: int, tables: LosslessTables, lows: list, kernels: list
) -> list[bytes]:
    """bands[c] = [LL, (HL, LH, HH) coarsest .. finest] int32 per plane, lows[c] the low band
    beside each level (reversible.forward's), kernels[c] the kernel of each level (coarsest
    first) -> the sections' bytes (version 5)."""
    enc = constriction.stream.queue.RangeEncoder()
    encode_numbers(enc, zigzag(np.concatenate([b[0].ravel() for b in bands])))
    sections = [enc.get_compressed().tobytes()]
    ctx = _Context(planes, levels)
    for k in range(1, levels + 1):
        enc = constriction.stream.queue.RangeEncoder()
        signs = _SignWriter()
        ctx.start_level(k, [lows[c][k - 1] for c in range(len(planes))])
        for o in range(3):
            for c, (v, slopes) in enumerate(_residuals(bands, planes, ctx, k, o)):
                if slopes:
                    enc.encode(np.array(slopes, np.int32), _SLOPE_MODEL)
                _encode_band(enc, v, ctx, c, k, o, tables, signs)
        ctx.end_level(k)
        words = enc.get_compressed().tobytes()
        head = bytes(reversible.KERNELS.index(kernels[c][k - 1]) for c in range(len(planes)))
        sections.append(head + struct.pack("<I", len(words)) + words + signs.finish())
    return sections


def _predictors(planes: list[Plane], ctx: _Context, c: int) -> list[int]:
    """Version 5 codes a chroma band as its difference from multiples of the same band of luma
    (Cb and Cr) and of Cb (Cr): the planes it is predicted from, in order."""
    kind = planes[c].kind
    if kind not in (1, 2) or ctx.luma is None:
        return []
    return [ctx.luma] + ([ctx.cb] if kind == 2 and ctx.cb is not None else [])


def _residuals(bands: list, planes: list[Plane], ctx: _Context, k: int, o: int) -> list:
    """Level k, orientation o: per plane, (the band the coder sees, the slopes of its predictors)."""
    out = []
    for c in range(len(planes)):
        v = bands[c][k][o]
        refs = [fit_shape(bands[src][k][o], v.shape) for src in _predictors(planes, ctx, c)]
        slopes = _choose_slopes(v, refs) if refs else []
        for ref, i in zip(refs, slopes, strict=True):
            v = v - _prediction(ref, i)
        out.append((v, slopes))
    return out


def _prediction(ref: np.ndarray, i: int) -> np.ndarray:
    return (SLOPES[i] * ref.astype(np.int32, copy=False) + 4) >> 3


def _choose_slopes(v: np.ndarray, refs: list[np.ndarray]) -> list[int]:
    """Slopes (indices into SLOPES) for predicting v from refs (one or two): least squares on a sample, then
    the grid points within two steps of it tried for the smallest absolute differences."""
    step = max(1, v.size // SLOPE_SAMPLE)
    y = v.ravel()[::step].astype(np.float64)
    x = np.stack([r.ravel()[::step] for r in refs], axis=1).astype(np.float64)
    sol = np.linalg.lstsq(x, y, rcond=None)[0] if y.size else np.zeros(len(refs))
    start = np.clip(np.rint(sol * 8), SLOPES[0] + 2, SLOPES[-1] - 2).astype(np.int64) - SLOPES[0]
    yi, xi = y.astype(np.int64), x.astype(np.int64)
    slopes = np.array(SLOPES, np.int64)
    # each predictor's five candidate predictions, then every combination's absolute differences
    cands = [(slopes[start[j] - 2 : start[j] + 3, None] * xi[None, :, j] + 4) >> 3 for j in range(len(refs))]
    total = cands[0] if len(cands) == 1 else cands[0][:, None, :] + cands[1][None, :, :]
    costs = np.abs(yi - total).sum(axis=-1)
    best = np.unravel_index(int(np.argmin(costs)), costs.shape)
    return [int(start[j] - 2 + best[j]) for j in range(len(refs))]


def _choose_scale(tables: LosslessTables, cls: int, p: int, act: np.ndarray, tok: np.ndarray) -> int:
    """The activity scale that codes a sample of the pass's tokens in the fewest bits (the
    first of equals; integer code lengths, so the C and NumPy paths agree)."""
    if act.size < SCALE_MIN:
        return NEUTRAL  # a few coefficients: not worth the search (nor the bits it could save)
    step = max(1, act.size // SCALE_SAMPLE)
    if loops.compiled is None:
        return int(np.argmin(_scale_costs_numpy(tables, cls, p, act[::step], tok[::step])))
    costs = np.empty(len(SCALES), np.int64)
    loops.compiled.scale_costs(act, tok, step, _SCALES32, tables.lut(cls, p), tables.code_lengths(cls, p), costs)
    return int(np.argmin(costs))


def _scale_costs_numpy(tables: LosslessTables, cls: int, p: int, a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Each scale's bits for the sample (a, t), less a constant. Scaled by SCALES[i] / 16, an
    activity a reaches threshold t where a >= (16 t - 8) / SCALES[i]: with the sample sorted by
    activity, every scale's buckets are runs of it, and a run's bits are two lookups in a running
    sum of each bucket's code lengths."""
    order = np.argsort(a, kind="stable")
    run = np.zeros((BUCKETS, a.size + 1), np.int64)
    np.cumsum(tables.code_lengths(cls, p)[:, t[order]], axis=1, out=run[:, 1:])
    edges = np.searchsorted(a[order], tables.scale_edges(cls, p), side="left")  # (scales, BUCKETS - 1)
    # Bucket b spans [edge b-1, edge b): summed over b, each edge e_j adds run[j, e_j] - run[j + 1, e_j]
    # (the first and last ends are the same for every scale).
    return (run[_ROWS, edges] - run[_ROWS + 1, edges]).sum(axis=1)


_SCALES32 = np.array(SCALES, np.int32)
_ROWS = np.arange(BUCKETS - 1)[None, :]


def _scaled(act: np.ndarray, i: int) -> np.ndarray:
    if i != NEUTRAL:
        act *= SCALES[i]
        act += 8
        act >>= 4
    return act


def _encode_band(
    enc, v: np.ndarray, ctx: _Context, c: int, k: int, o: int, tables: LosslessTables, signs: _SignWriter
) -> None:
    shift = ctx.planes[c].shift
    fast = loops.compiled is not None
    v = np.asarray(v, np.int32)
    if not fast and v.size and int(np.abs(v.astype(np.int64)).max()) >> (MAX_EXP + 1):
        raise ValueError("coefficient too large for the lossless coder")
    band, cls = ctx.band(c, k, o, v.shape)
    for p in passes_for(v.shape):
        n = pass_size(v.shape, p)
        if not n:
            continue
        act = band.activity(tables.weights32(cls, p), p)  # before this pass enters the context
        if fast:
            tok, nraw, raw = np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.uint64)
            neg, low = np.empty(n, bool), np.empty(n if shift else 0, np.int32)
            limit = 1 << (MAX_EXP + 1)
            nbig, nnz = loops.compiled.take_pass(
                v, PASS_VIEWS[p], band.cur, tok, nraw, raw, neg.view(np.uint8), low, DIRECT, CAP, limit, shift
            )
            nraw, raw, neg = nraw[:nbig], raw[:nbig], neg[:nnz]
        else:
            vp = band.take(v, p)
            m = np.abs(vp)
            hp = m >> shift if shift else m
            tok, _, nraw, raw = to_tokens(hp)
            neg = vp[vp != 0] < 0
            low = m & ((1 << shift) - 1)
        i = _choose_scale(tables, cls, p, act, tok)
        enc.encode(np.array([i], np.int32), _SCALE_MODEL)
        models = tables.models(cls, p)
        order, runs = tables.bucket_runs(cls, p, act, i)
        grouped = tok if order is None else tok[order]
        for bucket, start, end in runs:
            enc.encode(grouped[start:end], models[bucket])
        if nraw.size:
            code_bits(enc, raw, nraw, decode=False)
        if shift:
            code_bits(enc, low.astype(np.uint64), np.full(n, shift, np.int32), decode=False)
        signs.add(neg)
        if not fast:
            band.done(p, hp)
    ctx.finish(c, k, o, band)


_SCALE_MODEL = constriction.stream.model.Uniform(len(SCALES))
_UNIFORM = constriction.stream.model.Uniform()  # sizes per symbol
_SLOPE_MODEL = constriction.stream.model.Uniform(len(SLOPES))


def _code_signs(coder, v: np.ndarray) -> None:
    """Version 4: the signs of v's nonzero values (1: negative), sixteen to a uniform coder
    symbol; v holds magnitudes and is negated in place."""
    nz = np.flatnonzero(v)
    n = nz.size
    if not n:
        return
    words = -(-n // 16)
    widths = np.full(words, 16, np.int32)
    widths[-1] = n - 16 * (words - 1)
    packed = code_bits(coder, np.zeros(words, np.uint64), widths, decode=True).astype("<u2")
    neg = np.unpackbits(packed.view(np.uint8), bitorder="little")[:n].view(bool)
    v[nz[neg]] *= -1


class _SignWriter:
    """Version 5: a section's signs packed as they come (a large image's never sit unpacked)."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.left = np.zeros(0, bool)

    def add(self, neg: np.ndarray) -> None:
        bits = np.concatenate([self.left, neg]) if self.left.size else neg
        whole = bits.size & ~7
        self.parts.append(np.packbits(bits[:whole], bitorder="little").tobytes())
        self.left = bits[whole:].copy()

    def finish(self) -> bytes:
        return b"".join(self.parts) + np.packbits(self.left, bitorder="little").tobytes()


class _Signs:
    """Version 5: a section's signs, raw bits after its range-coded part, read in order (each
    pass unpacks only its own bytes: a large image's signs never sit unpacked all at once)."""

    def __init__(self, data) -> None:
        self.data = np.frombuffer(data, np.uint8)
        self.pos = 0

    def apply(self, v: np.ndarray) -> None:
        nz = np.flatnonzero(v)
        end = self.pos + nz.size
        if end > 8 * self.data.size:
            raise LosslessError("corrupted payload (signs missing)")
        first = self.pos >> 3
        bits = np.unpackbits(self.data[first : (end + 7) >> 3], bitorder="little").view(bool)
        skip = self.pos - 8 * first
        v[nz[bits[skip : skip + nz.size]]] *= -1
        self.pos = end

    def finish(self) -> None:
        left = np.unpackbits(self.data[self.pos >> 3 :], bitorder="little")[self.pos & 7 :]
        if -(-self.pos // 8) != self.data.size or left.any():
            raise LosslessError("corrupted payload (sign bits left over)")


def decode(
    sections: list[bytes],
    shapes: list,
    planes: list[Plane],
    levels: int,
    tables: LosslessTables,
    upto: int,
    kernel: str | None,
) -> list[np.ndarray]:
    """Inverse of encode and of the wavelet for the first `upto` detail levels (sections[:
    upto + 1]): per plane, the low band after them. kernel: version 4's one kernel, or None for
    version 5 (kernels per plane and level, scales, raw signs). Raises LosslessError for a
    stream that is not valid."""
    try:
        return _decode(sections, shapes, planes, levels, tables, upto, kernel)
    except LosslessError:
        raise
    except (AssertionError, ValueError, RuntimeError, OverflowError, IndexError, struct.error) as e:
        # constriction reports an impossible code stream with an AssertionError
        raise LosslessError(f"corrupted payload ({e})") from None


def _decoder(data: bytes):
    if len(data) % 4:
        raise LosslessError("a section is not a whole number of words")
    return constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))


def section_kernels(data: bytes, n: int) -> list[str]:
    """Version 5: the kernel each of n planes used at a detail section's level."""
    return _split_section(data, n)[0]


def _split_section(data: bytes, n: int) -> tuple[list[str], bytes, _Signs]:
    """Version 5: a detail section -> (each plane's kernel, the range-coded words, the signs)."""
    if len(data) < n + _SECTION_HEAD:
        raise LosslessError("corrupted payload (section too short)")
    if max(data[:n]) >= len(reversible.KERNELS):
        raise LosslessError("corrupted payload (unknown wavelet kernel)")
    (length,) = struct.unpack_from("<I", data, n)
    start = n + _SECTION_HEAD
    if length > len(data) - start:
        raise LosslessError("corrupted payload (section too short)")
    kernels = [reversible.KERNELS[i] for i in data[:n]]
    view = memoryview(data)  # no copies of a large section's parts
    return kernels, view[start : start + length], _Signs(view[start + length :])


def _decode(sections, shapes, planes, levels, tables, upto, kernel) -> list[np.ndarray]:
    n = len(planes)
    lh, lw = shapes[0]
    low = unzigzag(decode_numbers(_decoder(sections[0]), n * lh * lw))
    if low.size and int(np.abs(low).max()) >> (MAX_EXP + 1):
        raise LosslessError("corrupted payload (coefficient out of range)")
    ctx = _Context(planes, levels)
    lows = [low[c * lh * lw : (c + 1) * lh * lw].reshape(lh, lw).astype(np.int32) for c in range(n)]
    adaptive = kernel is None  # version 5
    for k in range(1, upto + 1):
        ctx.start_level(k, lows)
        if adaptive:
            kernels, words, signs = _split_section(sections[k], n)
        else:
            kernels, words, signs = [kernel] * n, sections[k], None
        dec = _decoder(words)
        level_bands = [[None, None, None] for _ in range(n)]
        for o in range(3):
            for c in range(n):
                srcs = _predictors(planes, ctx, c) if adaptive else []
                slopes = dec.decode(_SLOPE_MODEL, len(srcs)) if srcs else ()
                v = _decode_band(dec, shapes[k][o], ctx, c, k, o, tables, signs)
                for src, i in zip(srcs[::-1], slopes[::-1], strict=True):
                    if i != NO_SLOPE:
                        v += _prediction(fit_shape(level_bands[src][o], v.shape), int(i))
                level_bands[c][o] = v
        if adaptive:
            signs.finish()
        ctx.end_level(k)
        for c in range(n):  # plane by plane, each level's bands let go as soon as they are used
            lows[c] = reversible.step_inverse(lows[c], level_bands[c], kernels[c])
            level_bands[c] = None
    return lows


def _decode_band(
    dec, shape, ctx: _Context, c: int, k: int, o: int, tables: LosslessTables, signs: _Signs | None
) -> np.ndarray:
    """One band's values; signs: version 5's raw signs (then each pass also has its scale), or
    None for version 4 (signs in the range-coded stream, no scales)."""
    shift = ctx.planes[c].shift
    out = np.zeros(shape, np.int32)
    band, cls = ctx.band(c, k, o, shape)
    if loops.compiled is not None and signs is not None:
        # Version 5: the whole band in one C call (it calls the range decoder itself); the steps
        # below are what it does.
        ps = [p for p in passes_for(shape) if pass_size(shape, p)]
        signs.pos = loops.compiled.decode_band(
            dec, [tables.models(cls, p) for p in ps], band.cur, out, [PASS_VIEWS[p] for p in ps],
            [tables.weights32(cls, p) for p in ps], band.sources(), [tables.lut(cls, p) for p in ps], _SCALES32,
            signs.data, signs.pos, _SCALE_MODEL, _UNIFORM, np.empty(shape[0] * shape[1], np.int32),
            DIRECT, CAP, TOKENS, CHUNK, shift,
        )  # fmt: skip
        if signs.pos < 0:
            raise LosslessError("corrupted payload (signs missing)")
        ctx.finish(c, k, o, band)
        return out
    for p in passes_for(shape):
        n = pass_size(shape, p)
        if not n:
            continue
        act = band.activity(tables.weights32(cls, p), p)
        i = int(dec.decode(_SCALE_MODEL)) if signs is not None else NEUTRAL
        models = tables.models(cls, p)
        order, runs = tables.bucket_runs(cls, p, act, i)
        parts = [dec.decode(models[bucket], end - start) for bucket, start, end in runs]
        if loops.compiled is not None:
            tok, nraw = np.empty(n, np.int32), np.empty(n, np.int32)
            nbig, most = loops.compiled.scatter_tokens(parts, order, tok, nraw, DIRECT, TOKENS)
            nraw = nraw[:nbig]
        else:
            tok = np.empty(n, np.int32)
            tok[slice(None) if order is None else order] = parts[0] if len(parts) == 1 else np.concatenate(parts)
            nraw = raw_bits(tok[tok >= DIRECT])
            most = int(nraw.max()) if nraw.size else 0
        if not nraw.size:
            raw = np.zeros(0, np.int32)
        elif most <= CHUNK:  # one uniform symbol each, as code_bits codes them
            raw = dec.decode(_UNIFORM, np.left_shift(1, nraw, dtype=np.int32)).astype(np.int32, copy=False)
        else:
            raw = code_bits(dec, np.zeros(nraw.size, np.uint64), nraw, decode=True).astype(np.int32)
        hp = from_tokens(tok, np.flatnonzero(tok >= DIRECT), raw)
        band.done(p, hp)  # the context keeps the magnitudes: hp may now become the values
        if shift:
            low = code_bits(dec, np.zeros(n, np.uint64), np.full(n, shift, np.int32), decode=True)
            vp = (hp.astype(np.int64) << shift | low.astype(np.int64)).astype(np.int32)
        else:
            vp = hp
        if signs is None:
            _code_signs(dec, vp)
        else:
            signs.apply(vp)
        band.put(out, p, vp)
    ctx.finish(c, k, o, band)
    return out
