"""The lossless path's transform: JPEG 2000's reversible colour transform (RCT) and 5/3 integer
wavelet, in lifting form, integers only.

Every step is an integer add of a floor-divided integer sum (an arithmetic shift), so the inverse
undoes the forward exactly on every machine: nothing here is float. Lengths of any size work,
with whole-sample symmetric extension as in JPEG 2000 Part 1 (Annex F.3.8); band shapes and the
number of levels are the lossy wavelet's (`wavelet.band_shapes`, `wavelet.levels_for`), so a
preview at 1/2^j is the low band after `levels - j` inverse levels.

The low band has a DC gain of one: after j levels it is the image at 1/2^j of its size (each
sample a local average), which is what a preview shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

from aecompress import loops


def rct_forward(rgb: np.ndarray) -> list[np.ndarray]:
    """(H, W, 3) integers -> [Y, Cb, Cr] planes (Y = floor((R + 2G + B) / 4), Cb = B - G,
    Cr = R - G): int16 for 8-bit samples (half the memory of a large photo), else int32."""
    dtype = np.int16 if rgb.dtype == np.uint8 else np.int32
    g = rgb[..., 1].astype(dtype)
    cb = rgb[..., 2].astype(dtype)
    cr = rgb[..., 0].astype(dtype)
    y = cr + cb
    y += 2 * g
    y >>= 2
    cb -= g
    cr -= g
    return [y, cb, cr]


def rct_inverse(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
    """Inverse of rct_forward -> (H, W, 3) int32."""
    g = y - ((cb + cr) >> 2)
    return np.stack([cr + g, g, cb + g], axis=-1)


# Each kernel is a predict and an update step. (9,7)-M: a four-tap cubic predict, the 5/3's update;
# (13,7)-T: the same predict, a four-tap update (JPEG 2000 Part 2's). Smooth content favours the
# longer ones, texture and grain the 5/3: version 5 files choose per plane and level.
KERNELS = ("5/3", "9/7-M", "13/7-T")


@cache
def _mirror(n: int, positions: tuple[int, ...]) -> np.ndarray:
    """Whole-sample symmetric extension of a signal of length n: each position's mirror inside
    [0, n), then its index among the samples of its parity (s: even, d: odd)."""
    out = []
    for j in positions:
        if n == 1:
            j = 0
        else:
            j %= 2 * (n - 1)
            if j > n - 1:
                j = 2 * (n - 1) - j
        out.append(j // 2)
    return np.array(out, dtype=np.intp)


def _s_ext(s: np.ndarray, n: int, nd: int) -> np.ndarray:
    """s[-1 .. nd + 1] along the last axis."""
    return np.take(s, _mirror(n, tuple(2 * i for i in range(-1, nd + 2))), axis=-1)


def _d_ext(d: np.ndarray, n: int, ns: int) -> np.ndarray:
    """d[-1 .. ns - 1] along the last axis."""
    return np.take(d, _mirror(n, tuple(2 * i + 1 for i in range(-1, ns))), axis=-1)


def _prediction(s: np.ndarray, n: int, nd: int, kernel: str) -> np.ndarray:
    e = _s_ext(s, n, nd)
    if kernel == "5/3":
        return (e[..., 1 : nd + 1] + e[..., 2 : nd + 2]) >> 1
    # (9,7)-M: a four-tap cubic predictor; the update stays the 5/3's
    return (9 * (e[..., 1 : nd + 1] + e[..., 2 : nd + 2]) - (e[..., :nd] + e[..., 3 : nd + 3]) + 8) >> 4


def _updating(d: np.ndarray, n: int, ns: int, kernel: str) -> np.ndarray:
    if kernel != "13/7-T":
        e = _d_ext(d, n, ns)
        return (e[..., :ns] + e[..., 1 : ns + 1] + 2) >> 2
    e = np.take(d, _mirror(n, tuple(2 * i + 1 for i in range(-2, ns + 1))), axis=-1)  # d[-2 .. ns]
    return (9 * (e[..., 1 : ns + 1] + e[..., 2 : ns + 2]) - (e[..., :ns] + e[..., 3 : ns + 3]) + 16) >> 5


def _forward_1d(x: np.ndarray, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[-1]
    s, d = x[..., 0::2].copy(), x[..., 1::2].copy()
    if d.shape[-1]:
        d -= _prediction(s, n, d.shape[-1], kernel)
        s += _updating(d, n, s.shape[-1], kernel)
    return s, d


def _inverse_1d(s: np.ndarray, d: np.ndarray, kernel: str) -> np.ndarray:
    n = s.shape[-1] + d.shape[-1]
    s, d = s.copy(), d.copy()
    if d.shape[-1]:
        s -= _updating(d, n, s.shape[-1], kernel)
        d += _prediction(s, n, d.shape[-1], kernel)
    out = np.empty(s.shape[:-1] + (n,), dtype=s.dtype)
    out[..., 0::2], out[..., 1::2] = s, d
    return out


def _halves(x: np.ndarray, axis: int, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """The C lifting along an axis: x -> (low, high) halves."""
    n = x.shape[axis]
    shape_s, shape_d = list(x.shape), list(x.shape)
    shape_s[axis], shape_d[axis] = (n + 1) // 2, n // 2
    s, d = np.empty(shape_s, np.int32), np.empty(shape_d, np.int32)
    loops.compiled.lift(np.ascontiguousarray(x, np.int32), s, d, axis, KERNELS.index(kernel), False)
    return s, d


def _joined(s: np.ndarray, d: np.ndarray, axis: int, kernel: str) -> np.ndarray:
    """Inverse of _halves."""
    shape = list(s.shape)
    shape[axis] += d.shape[axis]
    x = np.empty(shape, np.int32)
    s, d = np.ascontiguousarray(s, np.int32), np.ascontiguousarray(d, np.int32)
    loops.compiled.lift(x, s, d, axis, KERNELS.index(kernel), True)
    return x


def step_forward(low: np.ndarray, kernel: str = "5/3") -> tuple[np.ndarray, tuple]:
    """One level: a low band (int32) -> (the next low band, its (HL, LH, HH))."""
    if loops.compiled is not None:
        lo, hi = _halves(low, 1, kernel)
        ll, lh = _halves(lo, 0, kernel)
        hl, hh = _halves(hi, 0, kernel)
        return ll, (hl, lh, hh)
    lo, hi = _forward_1d(low, kernel)  # along rows: horizontal low / high
    ll, lh = _forward_1d(np.ascontiguousarray(lo.T), kernel)
    hl, hh = _forward_1d(np.ascontiguousarray(hi.T), kernel)
    del lo, hi
    return np.ascontiguousarray(ll.T), tuple(np.ascontiguousarray(a.T) for a in (hl, lh, hh))


def forward(x: np.ndarray, levels: int, kernel: str | Sequence[str] = "5/3", lows: list | None = None) -> list:
    """x (H, W) integers -> [LL, (HL, LH, HH) coarsest .. finest], int32. kernel: one for every
    level, or one per level from the coarsest. With lows (a list), it receives the low band
    beside each level's details, in the same order ([LL, ...]): what a decoder has in hand
    before it decodes that level."""
    kernels = [kernel] * levels if isinstance(kernel, str) else list(kernel)[::-1]
    details, lls = [], []
    low = np.asarray(x, dtype=np.int32)
    for k in kernels:
        low, det = step_forward(low, k)
        details.append(det)
        if lows is not None:
            lls.append(low)
    if lows is not None:
        lows[:] = lls[::-1]
    return [low] + details[::-1]


def step_inverse(low: np.ndarray, details: tuple, kernel: str = "5/3") -> np.ndarray:
    """One level of the inverse: the low band and that level's (HL, LH, HH) -> the next low band."""
    hl, lh, hh = details
    if loops.compiled is not None:
        lo = _joined(low, lh, 0, kernel)
        hi = _joined(hl, hh, 0, kernel)
        return _joined(lo, hi, 1, kernel)
    lo = _inverse_1d(np.asarray(low, np.int32).T, np.asarray(lh, np.int32).T, kernel).T
    hi = _inverse_1d(np.asarray(hl, np.int32).T, np.asarray(hh, np.int32).T, kernel).T
    return np.ascontiguousarray(_inverse_1d(lo, hi, kernel))


def inverse(bands: list, upto: int | None = None, kernel: str | Sequence[str] = "5/3") -> np.ndarray:
    """Inverse of forward; with upto, only the first `upto` detail levels (coarsest first): the
    image at 1/2^(levels - upto) of its size."""
    kernels = [kernel] * (len(bands) - 1) if isinstance(kernel, str) else list(kernel)
    low = np.asarray(bands[0], dtype=np.int32)
    for details, k in zip(bands[1 : None if upto is None else upto + 1], kernels, strict=False):
        low = step_inverse(low, details, k)
    return low
