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
from typing import Any

import numpy as np
from PIL import Image

from aecompress import container, models
from aecompress.codec import Codec
from aecompress.denoiser import Denoiser
from aecompress.inputs import ImageLike, from_pil, from_samples, to_pil, to_samples  # noqa: F401 - library surface
from aecompress.latents import Latents
from aecompress.lossless import LosslessCodec

_shared: dict = {}
_shared_lock = threading.Lock()


def _get(kind: str, model: str | None, device: str):
    key = (kind, model, device)
    with _shared_lock:
        if key not in _shared:
            if kind == "codec":
                _shared[key] = Codec(model, device)
            elif kind == "lossless":
                _shared[key] = LosslessCodec(model)
            else:
                _shared[key] = Denoiser(model, device)
        return _shared[key]


def compress(
    image: ImageLike,
    quality: int | None = None,
    *,
    model: str | None = None,
    tune: str | None = None,
    device: str = "auto",
    value_range: tuple[float, float] | None = None,
    target_bpp: float | None = None,
    target_psnr: float | None = None,
    max_bytes: int | None = None,
    lossless: bool = False,
    max_error: int | None = None,
    denoise: bool = False,
) -> bytes:
    """An image -> the bytes of a .lat file (quality 1..levels; default: the model's default).
    Or one of target_bpp, target_psnr, max_bytes chooses the level per image (see
    Codec.compress_to; the level is in the file's header).

    lossless=True stores the exact samples (8 or 16 bits, grey, colour, alpha); max_error=N
    stores them to within N each (alpha exact), at a much lower rate. Both take integer
    samples only (uint8 or uint16 arrays, images and files). denoise=True cleans the image
    with the default denoiser first (lossy only): noise costs bits and nobody wants it back.
    tune="psnr" or "ssim" picks the model trained for that metric (instead of model=)."""
    if lossless or max_error is not None:
        if lossless and max_error is not None:
            raise ValueError("give lossless=True or max_error=N, not both")
        if quality is not None or target_bpp is not None or target_psnr is not None or max_bytes is not None:
            raise ValueError("lossless and max_error take no quality or target")
        if max_error is not None and not 1 <= int(max_error) <= 32767:
            raise ValueError(f"max_error must be 1..32767, got {max_error}")
        if denoise:
            raise ValueError("denoise is for lossy coding: a lossless file keeps the noise it is given")
        if tune is not None:
            raise ValueError("tune is for lossy coding: a lossless file has no metric to favour")
        return _get("lossless", None, "cpu").compress(to_samples(image), int(max_error or 0))
    cod = _get("codec", models.codec_id(model, tune), device)
    if denoise:
        im, _ = to_pil(image, value_range)
        image, value_range = _get("denoiser", None, device).denoise(im), None
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


def decompress(data: bytes | str | os.PathLike, *, device: str = "auto", output: str = "pil", scale: float = 1) -> Any:
    """.lat bytes (or a path to a .lat file) -> the image: output "pil" (default), "numpy"
    (uint8, or uint16 for 16-bit lossless files; H x W or H x W x C) or "png" (bytes).

    scale=1/2, 1/4, 1/8 ... decodes a preview of that size (sides rounded up) from the coarse
    levels only; from a path, a lossless file is read only as far as the preview needs."""
    drop = scale_levels(scale)
    if isinstance(data, (str, os.PathLike)):
        data = read_lat(data, drop)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"decompress takes .lat bytes or a path, not {type(data).__name__}")
    lat = container.parse(bytes(data), resolutions=None if not drop else container.MAX_RESOLUTIONS)
    if lat.header.integer:
        return from_samples(_get("lossless", lat.header.model_id, "cpu").decompress(lat, drop), output)
    im = _get("codec", lat.header.model_id, device).decompress(lat, drop)
    return as_output(im, output)


def scale_levels(scale: float) -> int:
    """1 -> 0, 1/2 -> 1, 1/4 -> 2 ...: how many wavelet levels a preview of that scale drops."""
    try:
        inv = 1 / float(scale)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ValueError(f"scale must be 1, 1/2, 1/4, 1/8 ..., not {scale!r}") from None
    drop = round(np.log2(inv)) if inv >= 1 else -1
    if drop < 0 or drop > 16 or abs(inv - (1 << drop)) > 1e-9 * inv:
        raise ValueError(f"scale must be 1, 1/2, 1/4, 1/8 ..., not {scale!r}")
    return drop


def read_lat(path: str | os.PathLike, drop: int = 0) -> bytes:
    """A .lat file's bytes, or for a preview of a lossless file only the prefix it needs."""
    with open(path, "rb") as fh:
        n = container.prefix_length(fh, drop) if drop else -1
        fh.seek(0)
        return fh.read() if n < 0 else fh.read(n)


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
