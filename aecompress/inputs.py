"""The library's input types: any image a caller holds -> a PIL image in one of the codec's modes,
and a result back in the caller's form (array of the same dtype and layout, PIL image, PNG bytes).

Below the codec, the denoiser and the API, which all take the same inputs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from aecompress import images

ImageLike = Union[Image.Image, np.ndarray, str, os.PathLike, bytes]  # noqa: UP007 - a runtime alias

CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Kind:
    """How the caller gave the image, to give the result back the same way."""

    kind: str  # "pil", "array", "bytes" or "path"
    dtype: Any = None
    channels: int | None = None  # None: a 2-D array
    value_range: tuple[float, float] | None = None


def to_pil(image: ImageLike, value_range: tuple[float, float] | None = None) -> tuple[Image.Image, Kind]:
    """Any accepted input -> (PIL image in one of the codec's modes L, LA, RGB, RGBA, how it came)."""
    if isinstance(image, Image.Image):
        return images.to_codec_mode(image), Kind("pil")
    if isinstance(image, np.ndarray):
        return _array_to_pil(image, value_range)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return images.open_image(bytes(image)).image, Kind("bytes")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"no such image file: {path}")
        return images.open_image(path).image, Kind("path")
    raise ValueError(f"unsupported image type {type(image).__name__}: give a PIL image, a NumPy array, a path or bytes")


def _array_to_pil(a: np.ndarray, value_range: tuple[float, float] | None) -> tuple[Image.Image, Kind]:
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in CHANNEL_MODES):
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
    mode = "L" if channels is None else CHANNEL_MODES[channels]
    return Image.fromarray(np.ascontiguousarray(plane), mode), Kind("array", a.dtype, channels, value_range)


def from_pil(im: Image.Image, how: Kind) -> Any:
    """A decoded PIL image back in the caller's form."""
    if how.kind in ("pil", "path"):
        return im
    if how.kind == "bytes":
        return images.encode_image(im, "PNG", icc_profile=im.info.get("icc_profile"))
    channels = how.channels
    mode = "L" if channels in (None, 1) else CHANNEL_MODES[channels]
    a = np.asarray(im.convert(mode) if im.mode != mode else im)
    if channels == 1:
        a = a[..., None]
    if how.dtype == np.uint16:
        return a.astype(np.uint16) * 257
    if np.issubdtype(how.dtype, np.floating):
        lo, hi = how.value_range
        return (a.astype(np.float64) / 255 * (hi - lo) + lo).astype(how.dtype)
    return a


def to_samples(image: ImageLike) -> images.Samples:
    """Any accepted input -> its exact integer samples (the lossless path): uint8 and uint16
    arrays as they are, PIL images by mode (I;16 as 16-bit), files as images.read_samples reads
    them. Float samples are refused: they have no exact integer form."""
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in CHANNEL_MODES) or 0 in a.shape[:2]:
            raise ValueError(f"expected an H x W or H x W x C array with C = 1..4, got shape {a.shape}")
        if a.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"lossless coding needs uint8 or uint16 samples, not {a.dtype}")
        a = a[..., None] if a.ndim == 2 else a
        return images.Samples(np.ascontiguousarray(a), CHANNEL_MODES[a.shape[2]], 16 if a.dtype == np.uint16 else 8)
    if isinstance(image, Image.Image):
        if image.mode in images.SIXTEEN_BIT_MODES or image.mode == "F":
            a = np.asarray(image)
            if image.mode == "F" or (a.size and (a.min() < 0 or a.max() > 65535)):
                raise ValueError(f"{image.mode} samples beyond 16-bit integers cannot be stored losslessly")
            return images.Samples(a.astype(np.uint16)[..., None], "L", 16, _info(image))
        im = images.to_codec_mode(image)
        a = np.asarray(im)
        return images.Samples(a[..., None] if a.ndim == 2 else a, im.mode, 8, _info(im))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return images.read_samples(bytes(image))
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"no such image file: {path}")
        return images.read_samples(path.read_bytes())
    raise ValueError(f"unsupported image type {type(image).__name__}: give a PIL image, a NumPy array, a path or bytes")


def _info(im: Image.Image) -> dict:
    exif, xmp = images.metadata(im)
    found = {"icc_profile": im.info.get("icc_profile"), "exif": exif, "xmp": xmp}
    return {k: v for k, v in found.items() if v}


def from_samples(s: images.Samples, output: str) -> Any:
    """Decoded samples in the form asked: "numpy" (uint8 or uint16; H x W for grey), "pil"
    (16-bit grey as I;16; 16-bit colour has no PIL form) or "png" (bytes)."""
    if output == "numpy":
        return s.array[..., 0] if s.array.shape[2] == 1 else s.array
    if output == "png":
        return images.write_samples(s, "PNG")
    if output != "pil":
        raise ValueError(f"output must be 'pil', 'numpy' or 'png', not {output!r}")
    if s.bits == 16:
        if s.mode != "L":
            raise ValueError("16-bit colour has no PIL image form: use output='numpy' or 'png'")
        im = Image.fromarray(np.ascontiguousarray(s.array[..., 0]))  # uint16: I;16
    else:
        im = Image.fromarray(np.ascontiguousarray(s.array[..., 0] if s.mode == "L" else s.array), s.mode)
    im.info.update(s.info)
    return im
