"""The library: compress, decompress, denoise and the codec's integer representation, for any
image a Python program holds.

Inputs are a PIL image, a NumPy array (H x W or H x W x C with C = 1..4, uint8 or uint16; floats
only with an explicit value_range), a path, or the bytes of an image file. The output follows the
input: an array gives an array of the same dtype and layout, a PIL image a PIL image, bytes give
PNG bytes, a path gives a PIL image. Anything else raises ValueError, never a silently wrong
picture.

The functions keep one Codec / Denoiser per (model, device), so a loop of calls loads each model
once; for full control create the objects and reuse them (they pickle, and rebuild their ONNX
sessions lazily where they land).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aecompress import container
from aecompress.inputs import ImageLike, from_pil, to_pil  # noqa: F401 - part of the library's surface
from aecompress.latents import Latents

_shared: dict = {}
_shared_lock = threading.Lock()


def _get(kind: str, model: str | None, device: str):
    key = (kind, model, device)
    with _shared_lock:
        if key not in _shared:
            if kind == "codec":
                from aecompress.codec import Codec

                _shared[key] = Codec(model, device)
            else:
                from aecompress.denoiser import Denoiser

                _shared[key] = Denoiser(model, device)
        return _shared[key]


def compress(
    image: ImageLike,
    quality: int | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    value_range: tuple[float, float] | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    max_bytes: int | None = None,
) -> bytes:
    """An image -> the bytes of a .lat file (quality 1..levels; default: the model's default).
    Or one of target_bpp, target_psnr, max_bytes chooses the level per image (see
    Codec.compress_to; the level is in the file's header)."""
    cod = _get("codec", model, device)
    targets = {
        k: v
        for k, v in (("target_bpp", target_bpp), ("target_psnr", target_psnr), ("max_bytes", max_bytes))
        if v is not None
    }
    if targets:
        if quality is not None:
            raise ValueError("give a quality or a target, not both")
        return cod.compress_to(image, **targets, value_range=value_range)[0]
    return cod.compress(image, quality, value_range=value_range)


def decompress(data: bytes | str | os.PathLike, *, device: str = "auto", output: str = "pil") -> Any:
    """.lat bytes (or a path to a .lat file) -> the image: output "pil" (default), "numpy"
    (uint8, H x W or H x W x C) or "png" (bytes)."""
    if isinstance(data, (str, os.PathLike)):
        data = Path(data).read_bytes()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"decompress takes .lat bytes or a path, not {type(data).__name__}")
    lat = container.parse(bytes(data))
    im = _get("codec", lat.header.model_id, device).decompress(lat)
    return as_output(im, output)


def as_output(im: Image.Image, output: str) -> Any:
    if output == "pil":
        return im
    if output == "numpy":
        return np.asarray(im)
    if output == "png":
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return buf.getvalue()
    raise ValueError(f"output must be 'pil', 'numpy' or 'png', not {output!r}")


def denoise(
    image: ImageLike,
    sigma: float | None = None,
    *,
    model: str | None = None,
    device: str = "auto",
    value_range: tuple[float, float] | None = None,
) -> Any:
    """A noisy image -> the cleaned image, in the input's form (sigma on the 0..255 scale; None
    estimates it)."""
    return _get("denoiser", model, device).denoise(image, sigma, value_range=value_range)


def encode_latents(
    image: ImageLike,
    quality: int | None = None,
    *,
    model: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> Latents:
    """An image -> its integer subbands at a quality level, as compress() would code them."""
    return _get("codec", model, "cpu").encode_latents(image, quality, value_range=value_range)


def decode_latents(latents: Latents, *, output: str = "pil") -> Any:
    """Inverse of encode_latents (the decoder's post-filter included)."""
    cod = _get("codec", latents.model, "auto")
    return as_output(cod.decode_latents(latents), output)
