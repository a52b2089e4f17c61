"""Blind noise-level estimate for the denoiser: the median absolute deviation of the finest
diagonal Haar wavelet band (Donoho and Johnstone 1994), which photographs' content barely reaches.

Training uses this same function, so the level the denoiser is steered by at run time is the one
it learned with.
"""

from __future__ import annotations

import numpy as np

_MAD_TO_SIGMA = 1 / 0.6744897501960817


def estimate_sigma(img: np.ndarray) -> float:
    """img: (H, W) or (H, W, C) in 0..255 (any dtype). Returns sigma on the 0..255 scale."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    if h == 0 or w == 0:
        return 0.0
    a = a[:h, :w]
    hh = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) * 0.5
    return float(np.median(np.abs(hh)) * _MAD_TO_SIGMA)
