"""Reading and writing image files with Pillow: modes, alpha, 16-bit, EXIF orientation.

Everything the codec sees is one of four modes: L, LA, RGB, RGBA (8 bits per sample).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageError(ValueError):
    """The input is not an image we can read, or the output cannot be written as asked."""


@dataclass
class LoadedImage:
    image: Image.Image  # L, LA, RGB or RGBA
    notes: list[str] = field(default_factory=list)


def _png_bit_depth(raw: bytes) -> int:
    # Pillow reads 16-bit-per-channel colour PNGs as 8-bit RGB without saying so; the IHDR says.
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 24:
        return raw[24]
    return 8


def open_image(source: str | Path | bytes, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file (path or bytes) into one of the four codec modes."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    notes: list[str] = []
    limit = Image.MAX_IMAGE_PIXELS
    try:
        if max_pixels is not None:
            Image.MAX_IMAGE_PIXELS = max_pixels // 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
            im.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(_why(e)) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image: {e}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        notes.append("EXIF orientation unreadable, ignored")
    if im.mode in SIXTEEN_BIT_MODES or im.mode == "F" or _png_bit_depth(raw) == 16:
        notes.append(f"{im.mode} input reduced to 8 bits per sample")
    return LoadedImage(to_codec_mode(im), notes)


def _why(e: Exception) -> str:
    if isinstance(e, UnidentifiedImageError):
        return "not an image file Pillow can read"
    return f"image too large: {e}"


def to_codec_mode(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode in SIXTEEN_BIT_MODES or mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if mode == "F" and a.size and np.nanmax(a) <= 1.0:
            a = a * 255
        elif mode != "F" and a.size and a.max() > 255:
            a = a / 257
        return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8), "L")
    if mode == "1":
        return im.convert("L")
    if mode in ("La", "PA"):
        return im.convert("RGBA" if mode == "PA" else "LA")
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode in ("RGBa", "RGBX"):
        return im.convert("RGBA" if mode == "RGBa" else "RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise ImageError(f"unsupported image mode {mode}") from None


FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pnm": "PPM",
}


def format_for(path: str | Path | None) -> str:
    if path is None or str(path) == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ImageError(f"cannot write image format {ext or '(none)'}: use one of " + " ".join(FORMATS))
    return FORMATS[ext]


def encode_image(im: Image.Image, fmt: str) -> bytes:
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        raise ImageError("JPEG cannot hold the alpha channel: write PNG, WebP or TIFF")
    if fmt in ("BMP", "PPM") and im.mode in ("LA", "RGBA"):
        raise ImageError(f"{fmt} output cannot hold the alpha channel here: write PNG")
    buf = io.BytesIO()
    im.save(buf, format=fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    return buf.getvalue()


def save_alpha(alpha: Image.Image) -> bytes:
    buf = io.BytesIO()
    alpha.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def load_alpha(data: bytes, size: tuple[int, int]) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except Exception as e:  # noqa: BLE001
        raise ImageError(f"alpha plane unreadable: {e}") from None
    if im.mode != "L" or im.size != size:
        raise ImageError("alpha plane does not match the image")
    return im


def write_stream(data: bytes, stream: BinaryIO) -> None:
    stream.write(data)
    stream.flush()
