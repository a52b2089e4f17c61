"""Denoiser: a noisy image -> the cleaned image, with the ONNX denoiser steered by a noise level
(estimated blindly unless given) and run in overlapping tiles.

`run_float` works on float RGB in [0, 1]; `denoise` (and calling the object) takes any image the
library accepts (aecompress.inputs) and gives it back in the same form: 16-bit arrays stay 16-bit,
grayscale stays grayscale, alpha passes through untouched.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aecompress import images, models, runtime
from aecompress.inputs import CHANNEL_MODES, from_pil, to_pil
from aecompress.noise_level import estimate_sigma
from aecompress.tiling import pad_to_multiple, run_tiled

# The network sees a quarter-resolution pixel-unshuffle and two more halvings.
MULTIPLE = 8
# Context on each side of a tile. unet-blind-v2 and -v3 (one network) reach far with their
# middle blocks: with 64 pixels, tiles of a Kodak image differed from the whole by up to 2
# levels on 3% of the pixels; with 96 by one level on 21 pixels of 393k (128: none, but 1.09 GB
# for a 24-megapixel photo).
HALO = 96
# Tiles plus halos stay at 896 pixels a side (the memory bound); an image of no more pixels than
# one such tile goes through whole, so a photo of Kodak's size pays no halo.
DEFAULT_TILE = 704


class Denoiser:
    """One loaded denoiser; its ONNX session is created on first use, and rebuilt there when the
    object is pickled to another process. Safe to share between threads."""

    def __init__(
        self, model_id: str | None = None, device: str = "auto", threads: int | None = None, root: Path | None = None
    ) -> None:
        self.info = models.get(model_id, "denoiser", root)
        self.device, self.threads = device, threads
        self._session = None
        self._lock = threading.Lock()

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                self._session = models.load_session(self.info, "model", self.device, self.threads)
            return self._session

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_session"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        return runtime.provider_name(self.session)

    def _run(self, x: np.ndarray, level: float) -> np.ndarray:
        x, pb, pr = pad_to_multiple(x[0], MULTIPLE, mode="reflect" if min(x.shape[2:]) > MULTIPLE else "edge")
        sigma = np.full((1, 1, *x.shape[1:]), level, dtype=np.float32)
        out = runtime.run(self.session, {"noisy": x[None], "sigma": sigma})
        return out[:, :, : out.shape[2] - pb, : out.shape[3] - pr]

    def run_float(self, rgb: np.ndarray, sigma: float | None = None, tile: int = DEFAULT_TILE) -> np.ndarray:
        """rgb: (H, W, 3) float32 in [0, 1]; sigma on the 0..255 scale, None to estimate it.
        Returns the denoised image, same shape, clipped to [0, 1]."""
        level = estimate_sigma(rgb * 255.0) if sigma is None else float(sigma)
        # A (3, H, W) view: run_tiled copies each tile out of it, so the image is never copied whole.
        x = rgb.astype(np.float32, copy=False).transpose(2, 0, 1)
        h, w = rgb.shape[:2]
        tile = max(tile, MULTIPLE)
        if h * w <= (tile + 2 * HALO) ** 2:
            tile = max(h, w)
        out = run_tiled(lambda t: np.clip(self._run(t, level / 255.0), 0.0, 1.0), x, tile, HALO)
        del x
        # A view: a 24-megapixel photo is not copied once more on the way out.
        return out.transpose(1, 2, 0)

    def denoise(self, image: Any, sigma: float | None = None, value_range: tuple[float, float] | None = None) -> Any:
        """Any image the library takes (PIL, NumPy array, path, file bytes) -> the cleaned image,
        in the same form."""
        if isinstance(image, np.ndarray):
            return self._denoise_array(image, sigma, value_range)
        if isinstance(image, (bytes, bytearray, memoryview)):
            px = images.read_pixels(bytes(image))
            px.color = self.run_float(px.color, sigma)
            return images.write_pixels(px, "PNG")
        im, how = to_pil(image, value_range)
        a = np.asarray(im)
        out = self._denoise_array(a, sigma, None)
        return from_pil(Image.fromarray(out, im.mode), how)

    __call__ = denoise

    def _denoise_array(self, a: np.ndarray, sigma: float | None, value_range) -> np.ndarray:
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in CHANNEL_MODES) or 0 in a.shape[:2]:
            raise ValueError(f"expected an H x W or H x W x C array with C = 1..4, got shape {a.shape}")
        if a.dtype == np.uint8:
            lo, hi = 0.0, 255.0
        elif a.dtype == np.uint16:
            lo, hi = 0.0, 65535.0
        elif np.issubdtype(a.dtype, np.floating):
            if value_range is None:
                raise ValueError("float arrays need value_range=(low, high), e.g. (0, 1) or (0, 255)")
            lo, hi = (float(v) for v in value_range)
            if not hi > lo or not np.isfinite(a).all():
                raise ValueError("value_range must be (low, high) with high > low, and values finite")
        else:
            raise ValueError(f"unsupported dtype {a.dtype}: give uint8, uint16, or float with value_range")
        x = a[..., None] if a.ndim == 2 else a
        channels = x.shape[2]
        colour = x[..., : 3 if channels >= 3 else 1]
        alpha = x[..., channels - 1 :] if channels in (2, 4) else None
        f = (colour.astype(np.float32) - lo) / (hi - lo)
        rgb = np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f
        out = self.run_float(np.ascontiguousarray(rgb), sigma)
        if f.shape[2] == 1:
            out = out.mean(axis=2, keepdims=True)
        scaled = out * (hi - lo) + lo
        res = np.rint(scaled).astype(a.dtype) if not np.issubdtype(a.dtype, np.floating) else scaled.astype(a.dtype)
        if alpha is not None:
            res = np.concatenate([res, alpha], axis=2)
        return res[..., 0] if a.ndim == 2 else res
