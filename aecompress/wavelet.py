"""JPEG 2000's irreversible colour transform (ICT) and CDF 9/7 wavelet, in lifting form.

Lifting with whole-sample symmetric extension, as in JPEG 2000 Part 1: any length works (1 and
odd lengths included) and the inverse undoes the forward steps exactly, up to float rounding, so
the transform itself never limits quality. Arrays are float32 and transformed in place where
NumPy allows, which keeps a 24-megapixel channel at a few copies of 96 MB.

The subbands of one channel are returned as a list: `bands[0]` is the coarsest LL, then for each
level from coarsest to finest a tuple (HL, LH, HH) (horizontal detail, vertical detail, diagonal).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from aecompress.bands import MAX_LEVELS, MIN_LOW, band_shapes, levels_for  # noqa: F401 - the wavelet's geometry

# CDF 9/7 lifting coefficients (JPEG 2000 Part 1, Annex F).
ALPHA, BETA, GAMMA, DELTA = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
KAPPA = 1.230174104914001

ICT = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]],
    dtype=np.float64,
)
ICT_INV = np.linalg.inv(ICT)


def _predict(s: np.ndarray, d: np.ndarray, c: float) -> None:
    """d[i] += c * (s[i] + s[i + 1]) along the last axis, s mirrored at the right edge."""
    nd = d.shape[-1]
    if nd == 0:
        return
    if s.shape[-1] > nd:
        d += np.float32(c) * (s[..., :nd] + s[..., 1 : nd + 1])
    else:  # even length: the last d mirrors onto the last s
        d[..., : nd - 1] += np.float32(c) * (s[..., : nd - 1] + s[..., 1:nd])
        d[..., nd - 1] += np.float32(2 * c) * s[..., nd - 1]


def _update(s: np.ndarray, d: np.ndarray, c: float) -> None:
    """s[i] += c * (d[i - 1] + d[i]) along the last axis, d mirrored at both edges."""
    ns, nd = s.shape[-1], d.shape[-1]
    if nd == 0:
        return
    s[..., 0] += np.float32(2 * c) * d[..., 0]
    if nd > 1:
        s[..., 1:nd] += np.float32(c) * (d[..., : nd - 1] + d[..., 1:nd])
    if ns > nd:  # odd length: the last s mirrors onto the last d
        s[..., nd] += np.float32(2 * c) * d[..., nd - 1]


def _forward_1d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, d = x[..., 0::2].copy(), x[..., 1::2].copy()
    _predict(s, d, ALPHA)
    _update(s, d, BETA)
    _predict(s, d, GAMMA)
    _update(s, d, DELTA)
    s *= np.float32(1 / KAPPA)
    d *= np.float32(KAPPA / 2)
    return s, d


def _inverse_1d(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    s = s * np.float32(KAPPA)
    d = d * np.float32(2 / KAPPA)
    _update(s, d, -DELTA)
    _predict(s, d, -GAMMA)
    _update(s, d, -BETA)
    _predict(s, d, -ALPHA)
    out = np.empty(s.shape[:-1] + (s.shape[-1] + d.shape[-1],), dtype=np.float32)
    out[..., 0::2], out[..., 1::2] = s, d
    return out


def forward(x: np.ndarray, levels: int) -> list:
    """x (..., H, W) float32 -> [LL, (HL, LH, HH) coarsest .. finest]."""
    details = []
    low = np.asarray(x, dtype=np.float32)
    # Intermediates are dropped as soon as they are used: a 24-megapixel channel peaks at about
    # three copies of itself, not six.
    for _ in range(levels):
        lo, hi = _forward_1d(low)  # along rows: horizontal low / high
        del low
        t = np.ascontiguousarray(lo.swapaxes(-1, -2))
        del lo
        ll, lh = _forward_1d(t)
        t = np.ascontiguousarray(hi.swapaxes(-1, -2))
        del hi
        hl, hh = _forward_1d(t)
        del t
        details.append(tuple(np.ascontiguousarray(a.swapaxes(-1, -2)) for a in (hl, lh, hh)))
        del hl, lh, hh
        low = np.ascontiguousarray(ll.swapaxes(-1, -2))
        del ll
    return [low] + details[::-1]


def inverse(bands: list, upto: int | None = None) -> np.ndarray:
    """Inverse of forward; with upto, only the first `upto` detail levels (coarsest first): the
    image at 1/2^(levels - upto) of its size (the low band keeps the image's scale)."""
    low = np.asarray(bands[0], dtype=np.float32)
    for hl, lh, hh in bands[1 : None if upto is None else upto + 1]:
        lo = _inverse_1d(low.swapaxes(-1, -2), np.asarray(lh, np.float32).swapaxes(-1, -2)).swapaxes(-1, -2)
        del low
        hi = _inverse_1d(np.asarray(hl, np.float32).swapaxes(-1, -2), np.asarray(hh, np.float32).swapaxes(-1, -2))
        low = _inverse_1d(lo, hi.swapaxes(-1, -2))
        del lo, hi
    return low


def rgb_to_ycc(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) on 0..255 -> (3, H, W) float32 Y, Cb, Cr with Y centred on 0."""
    x = np.tensordot(ICT.astype(np.float32), rgb.astype(np.float32), axes=1)
    x[0] -= 128.0
    return x


def rgb_to_ycc_channel(rgb: np.ndarray, c: int) -> np.ndarray:
    """One channel of rgb_to_ycc from (H, W, 3) uint8, without a float copy of all three."""
    m = ICT[c].astype(np.float32)
    x = rgb[..., 0] * m[0]
    x += rgb[..., 1] * m[1]
    x += rgb[..., 2] * m[2]
    if c == 0:
        x -= np.float32(128)
    return x


def ycc_to_rgb(ycc: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Inverse of rgb_to_ycc, unclipped float32; out may be ycc itself (in place, row by row)."""
    inv = ICT_INV.astype(np.float32)
    out = np.empty_like(ycc, dtype=np.float32) if out is None else out
    for r in range(0, ycc.shape[1], _ROWS):  # a band of rows at a time: no second full-size float image
        y = ycc[:, r : r + _ROWS].astype(np.float32)
        y[0] += np.float32(128)
        out[:, r : r + _ROWS] = np.tensordot(inv, y, axes=1)
    return out


_ROWS = 32


def _gains_1d(levels: int) -> tuple[list, list]:
    """Synthesis L2 norms along one axis: (low band after k levels, high band of level k), k = 1..levels."""
    n = 2 ** (levels + 4)
    low, high = [1.0], [1.0]
    for k in range(1, levels + 1):
        for kind, dest in (("low", low), ("high", high)):
            m = n >> k
            s, d = np.zeros((1, m), np.float32), np.zeros((1, m), np.float32)
            (s if kind == "low" else d)[0, m // 2] = 1.0
            x = _inverse_1d(s, d)
            for _ in range(k - 1):  # up through the coarser-to-finer low-pass chain
                x = _inverse_1d(x, np.zeros_like(x))
            dest.append(float(np.sqrt((x.astype(np.float64) ** 2).sum())))
    return low, high


@cache
def synthesis_gains(levels: int) -> tuple:
    """L2 norm of one coefficient's synthesis basis function per band (same layout as `bands`):
    an error of e in that band costs e**2 * gain**2 in pixel MSE, so steps of base / gain spend
    bits where they buy the most PSNR. The transform is separable, so each 2-D norm is the
    product of two 1-D ones."""
    low, high = _gains_1d(levels)
    gains: list = [low[levels] ** 2]
    for k in range(levels, 0, -1):  # coarsest first, as in `bands`
        gains.append((high[k] * low[k], low[k] * high[k], high[k] * high[k]))
    return tuple(gains)
