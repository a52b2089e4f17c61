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
