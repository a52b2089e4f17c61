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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from aecompress import container, images

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike, bytes]  # noqa: UP007 - a runtime alias

_CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class _Kind:
    """How the caller gave the image, to give the result back the same way."""

    kind: str  # "pil", "array", "bytes" or "path"
    dtype: Any = None
    channels: int | None = None  # None: a 2-D array
    value_range: tuple[float, float] | None = None


def to_pil(image: ImageLike, value_range: tuple[float, float] | None = None) -> tuple[Image.Image, _Kind]:
    """Any accepted input -> (PIL image in one of the codec's modes L, LA, RGB, RGBA, how it came)."""
    if isinstance(image, Image.Image):
        return images.to_codec_mode(image), _Kind("pil")
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, value_range)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return images.open_image(bytes(image)).image, _Kind("bytes")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"no such image file: {path}")
        return images.open_image(path).image, _Kind("path")
    raise ValueError(f"unsupported image type {type(image).__name__}: give a PIL image, a NumPy array, a path or bytes")


def _array_to_pil(a: np.ndarray, value_range: tuple[float, float] | None) -> tuple[Image.Image, _Kind]:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in _CHANNEL_MODES):
        raise ValueError(f"expected an H x W or H x W x C array with C = 1..4, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"empty image of shape {a.shape}")
    channels = None if a.ndim == 2 else a.shape[2]
    if a.dtype == np.uint8:
        u8 = a
    elif a.dtype == np.uint16:
        u8 = np.rint(a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if value_range is None:
            raise ValueError("float arrays need value_range=(low, high), e.g. (0, 1) or (0, 255)")
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        if not np.isfinite(a).all():
            raise ValueError("the array holds NaN or infinite values")
        u8 = np.rint(np.clip((a - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported dtype {a.dtype}: give uint8, uint16, or float with value_range")
    plane = u8[..., 0] if channels == 1 else u8
    mode = "L" if channels is None else _CHANNEL_MODES[channels]
    return Image.fromarray(np.ascontiguousarray(plane), mode), _Kind("array", a.dtype, channels, value_range)


def from_pil(im: Image.Image, how: _Kind) -> Any:
    """A decoded PIL image back in the caller's form."""
    if how.kind in ("pil", "path"):
        return im
    if how.kind == "bytes":
        return images.encode_image(im, "PNG", icc_profile=im.info.get("icc_profile"))
    channels = how.channels
    mode = "L" if channels in (None, 1) else _CHANNEL_MODES[channels]
    a = np.asarray(im.convert(mode) if im.mode != mode else im)
    if channels == 1:
        a = a[..., None]
    if how.dtype == np.uint16:
        return a.astype(np.uint16) * 257
    if np.issubdtype(how.dtype, np.floating):
        lo, hi = how.value_range
        return (a.astype(np.float64) / 255 * (hi - lo) + lo).astype(how.dtype)
    return a


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


@dataclass
class Latents:
    """The codec's compact representation of one image: integer wavelet subbands.

    bands[c] for c in Y, Cb, Cr: [LL, (HL, LH, HH) for each level, coarsest first], int32 arrays.
    With the model id and quality they are exactly what a .lat file stores (decode_latents
    inverts them); steps[c] are the quantiser steps, so bands * steps approximates the wavelet
    coefficients of the image's colour channels (see docs/format.md).
    """

    bands: list
    width: int
    height: int
    mode: str
    quality: int
    model: str
    steps: list

    def flat(self) -> np.ndarray:
        """All coefficients of all bands as one int32 vector (a feature vector for ML pipelines)."""
        parts = []
        for ch in self.bands:
            parts.append(ch[0].ravel())
            parts += [b.ravel() for t in ch[1:] for b in t]
        return np.concatenate(parts).astype(np.int32)


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
