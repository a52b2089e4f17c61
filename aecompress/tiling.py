"""Overlapping tiles for fully convolutional models, shared by the codec and the denoiser.

A model runs on each tile grown by a halo of context on every side; only the tile's own part of
the result is kept. With a halo as wide as the model's receptive field the stitched result equals
the untiled one, and memory is bounded by the tile size instead of the image size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Model = Callable[[np.ndarray], np.ndarray]


def run_tiled(fn: Model, x: np.ndarray, tile: int, halo: int, scale: float = 1.0) -> np.ndarray:
    """Apply fn, a (1, C, h, w) -> (1, C', h*scale, w*scale) map, to x (C, H, W) tile by tile.

    tile and halo must be such that every tile edge maps to a whole output pixel (multiples of
    the model's stride when scale < 1, any integer when scale >= 1).
    """
    _, h, w = x.shape
    if h <= tile and w <= tile:
        return fn(x[None])[0]
    out: np.ndarray | None = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ey0, ex0 = max(0, y0 - halo), max(0, x0 - halo)
            ey1, ex1 = min(h, y1 + halo), min(w, x1 + halo)
            r = fn(np.ascontiguousarray(x[None, :, ey0:ey1, ex0:ex1]))[0]
            if out is None:
                out = np.empty((r.shape[0], round(h * scale), round(w * scale)), dtype=r.dtype)
            ry, rx = round((y0 - ey0) * scale), round((x0 - ex0) * scale)
            th, tw = round((y1 - y0) * scale), round((x1 - x0) * scale)
            out[:, round(y0 * scale) : round(y0 * scale) + th, round(x0 * scale) : round(x0 * scale) + tw] = r[
                :, ry : ry + th, rx : rx + tw
            ]
    assert out is not None
    return out


def pad_to_multiple(x: np.ndarray, multiple: int, mode: str = "edge") -> tuple[np.ndarray, int, int]:
    """Pad (C, H, W) at the bottom and right; returns the padded array and the padding."""
    pb, pr = -x.shape[1] % multiple, -x.shape[2] % multiple
    if pb or pr:
        x = np.pad(x, ((0, 0), (0, pb), (0, pr)), mode=mode)
    return x, pb, pr
