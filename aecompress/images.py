"""Reading and writing image files with Pillow: modes, alpha, 16-bit, EXIF orientation.

Everything the codec sees is one of four modes: L, LA, RGB, RGBA (8 bits per sample).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aecompress import stderr
from aecompress.errors import ImageError

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass
class LoadedImage:
    image: Image.Image  # L, LA, RGB or RGBA
    notes: list[str] = field(default_factory=list)


def _png_bit_depth(raw: bytes) -> int:
    # Pillow reads 16-bit-per-channel colour PNGs as 8-bit RGB without saying so; the IHDR says.
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 24:
        return raw[24]
    return 8


def _library_messages(raw: bytes):
    """libtiff prints to the process's stderr from C, when it opens a file and when it decodes
    one: only TIFF files pay for catching that (a lock all threads share while a file is read)."""
    tiff = raw[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    return stderr.library_messages() if tiff else contextlib.nullcontext()


def _open(raw: bytes, max_pixels: int | None, load: bool = True) -> Image.Image:
    """Pillow's open with the size limit (max_pixels, default Pillow's) checked from the header,
    and the pixels decoded unless load is False; any failure is an ImageError."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        if max_pixels is not None:
            Image.MAX_IMAGE_PIXELS = max_pixels // 2
        with _library_messages(raw), warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(raw))
            if load:
                im.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(_why(e)) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"cannot read image: {e}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return im


def open_image(source: str | Path | bytes, max_pixels: int | None = None) -> LoadedImage:
    """Read an image file (path or bytes) into one of the four codec modes."""
    raw = source if isinstance(source, bytes) else Path(source).read_bytes()
    notes: list[str] = []
    im = _open(raw, max_pixels)
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the picture
        notes.append("EXIF orientation unreadable, ignored")
    if im.mode in SIXTEEN_BIT_MODES or im.mode == "F" or _png_bit_depth(raw) == 16:
        notes.append(f"{im.mode} input reduced to 8 bits per sample")
    out = to_codec_mode(im)
    if im.mode in ("CMYK", "YCbCr", "LAB", "HSV") and "icc_profile" in out.info:
        # The profile describes the source colour space, not the RGB the codec stores.
        out.info.pop("icc_profile")
        notes.append(f"{im.mode} converted to RGB; its ICC profile is not kept")
    return LoadedImage(out, notes)


def psnr(a, b) -> float:
    """PSNR in dB of two images on the 0..255 scale (arrays or PIL images), over all samples."""
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return 10 * float(np.log10(255.0**2 / max(mse, 1e-12)))


def metadata(im: Image.Image) -> tuple[bytes | None, bytes | None]:
    """(EXIF, XMP) of an image as opened here, orientation already applied; None where absent."""
    exif = None
    try:
        ex = im.getexif()
        if len(ex):
            exif = ex.tobytes()
    except Exception:  # noqa: BLE001 - unreadable metadata must not lose the picture
        exif = None
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    return exif, (bytes(xmp) if xmp else None)


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


# Image files a folder is searched for (training data, benchmarks): the formats written above.
IMAGE_SUFFIXES = frozenset(FORMATS)


def format_for(path: str | Path | None) -> str:
    if path is None or str(path) == "-":
        return "PNG"
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ImageError(f"cannot write image format {ext or '(none)'}: use one of " + " ".join(FORMATS))
    return FORMATS[ext]


def encode_image(im: Image.Image, fmt: str, quality: int = 95, **info) -> bytes:
    """Encode to bytes; info may carry icc_profile, exif and xmp to keep; quality for JPEG and WebP."""
    if fmt == "JPEG" and im.mode in ("LA", "RGBA"):
        raise ImageError("JPEG cannot hold the alpha channel: write PNG, WebP or TIFF")
    if fmt in ("BMP", "PPM") and im.mode in ("LA", "RGBA"):
        raise ImageError(f"{fmt} output cannot hold the alpha channel here: write PNG")
    buf = io.BytesIO()
    opts = {k: v for k, v in info.items() if v and fmt in ("PNG", "JPEG", "WEBP", "TIFF")}
    if fmt in ("JPEG", "WEBP"):
        opts["quality"] = quality
    if "xmp" in opts and fmt in ("PNG", "TIFF"):
        xmp = opts.pop("xmp")
        if fmt == "PNG":  # Pillow writes PNG XMP only as this iTXt chunk
            from PIL.PngImagePlugin import PngInfo

            opts["pnginfo"] = PngInfo()
            opts["pnginfo"].add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
    if fmt == "PNG":
        # zlib level 1: three times faster than Pillow's default 6 on photographs, and on decoded
        # photographs (noise-like low bits) no larger.
        opts["compress_level"] = 1
    im.save(buf, format=fmt, **opts)
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


@dataclass
class Pixels:
    """An image as the denoiser sees it, with everything needed to write it back unchanged
    apart from its pixels: bit depth, grayscale, alpha, ICC profile and EXIF."""

    color: np.ndarray  # (H, W, 3) float32 in [0, 1]
    gray: bool
    bits: int  # 8 or 16
    alpha: np.ndarray | None = None  # (H, W), uint8 or uint16, passed through untouched
    info: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _png16(raw: bytes) -> Pixels:
    s = _samples16(raw)
    alpha = s.array[..., -1].copy() if s.mode in ("LA", "RGBA") else None
    color = s.array[..., :-1] if alpha is not None else s.array
    gray = color.shape[2] == 1
    color = np.repeat(color, 3, axis=2) if gray else color
    return Pixels(color.astype(np.float32) / 65535.0, gray, 16, alpha)


def read_pixels(raw: bytes, max_pixels: int | None = None) -> Pixels:
    if _png_bit_depth(raw) == 16:
        _open(raw, max_pixels, load=False)  # the size limit, from the header: pypng decodes
        try:
            return _png16(raw)
        except Exception as e:  # noqa: BLE001 - pypng raises its own error types
            raise ImageError(f"cannot read 16-bit PNG: {e}") from None
    loaded = open_image(raw, max_pixels)
    with _library_messages(raw), Image.open(io.BytesIO(raw)) as orig:
        sixteen = orig.mode in SIXTEEN_BIT_MODES
        info = {k: orig.info[k] for k in ("icc_profile",) if orig.info.get(k)}
        exif = loaded.image.getexif() if hasattr(loaded.image, "getexif") else None
        if sixteen:
            orig = ImageOps.exif_transpose(orig)
            a = np.asarray(orig, dtype=np.float32)
            a = a / 65535.0 if a.max(initial=0) > 255 or orig.mode != "I" else a / 255.0
            return Pixels(np.repeat(np.clip(a, 0, 1)[..., None], 3, axis=2), True, 16, None, info)
    im = loaded.image
    if exif:
        info["exif"] = exif.tobytes()
    alpha = np.asarray(im.getchannel("A")) if im.mode in ("LA", "RGBA") else None
    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    notes = [n for n in loaded.notes if "8 bits" not in n]
    return Pixels(rgb, im.mode in ("L", "LA"), 8, alpha, info, notes)


def write_pixels(p: Pixels, fmt: str, quality: int = 95) -> bytes:
    maxval = 65535 if p.bits == 16 else 255
    a = np.clip(p.color, 0, 1)
    a *= maxval
    np.rint(a, out=a)
    if p.gray:
        # Back to one channel the way it came: the three channels are one grey image
        a = np.rint(a.mean(axis=2, keepdims=True))
    dtype = np.uint16 if p.bits == 16 else np.uint8
    a = a.astype(dtype)
    if p.alpha is not None:
        a = np.concatenate([a, p.alpha.astype(dtype)[..., None]], axis=2)
    if p.bits == 16:
        if fmt != "PNG":
            raise ImageError("16-bit output is written as PNG: name the output .png")
        import png

        buf = io.BytesIO()
        h, w, planes = a.shape
        png.Writer(w, h, greyscale=planes in (1, 2), alpha=p.alpha is not None, bitdepth=16).write(
            buf, a.reshape(h, w * planes)
        )
        return buf.getvalue()
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[a.shape[2]]
    im = Image.fromarray(a.squeeze(2) if a.shape[2] == 1 else a, mode)
    return encode_image(im, fmt, quality, **p.info)


@dataclass
class Samples:
    """An image's exact integer samples, as the lossless path stores them."""

    array: np.ndarray  # (H, W, C) uint8 or uint16, C = 1..4 in the order of mode
    mode: str  # L, LA, RGB or RGBA
    bits: int  # 8 or 16
    info: dict = field(default_factory=dict)  # icc_profile, exif, xmp (bytes)
    notes: list[str] = field(default_factory=list)


_CONVERTED = ("CMYK", "YCbCr", "LAB", "HSV")


def _samples16(raw: bytes) -> Samples:
    import png  # pypng: Pillow reads 16-bit colour PNGs as 8-bit

    w, h, rows, meta = png.Reader(bytes=raw).asDirect()
    planes = meta["planes"]
    a = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, planes)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[planes]
    return Samples(a, mode, 16)


def read_samples(raw: bytes, max_pixels: int | None = None) -> Samples:
    """An image file -> its exact samples (8 or 16 bits), EXIF orientation applied. Palette,
    1-bit and premultiplied images are expanded exactly; CMYK, YCbCr, LAB and HSV are converted
    to RGB (noted); float and 32-bit samples are refused."""
    if _png_bit_depth(raw) == 16:
        _open(raw, max_pixels, load=False)  # the size limit, from the header: pypng decodes
        try:
            return _samples16(raw)
        except Exception as e:  # noqa: BLE001 - pypng raises its own error types
            raise ImageError(f"cannot read 16-bit PNG: {e}") from None
    loaded = open_image(raw, max_pixels)
    with _library_messages(raw), Image.open(io.BytesIO(raw)) as orig:
        src_mode = orig.mode
        info = {k: orig.info[k] for k in ("icc_profile",) if orig.info.get(k)}
        if src_mode in SIXTEEN_BIT_MODES or src_mode == "F":
            orig = ImageOps.exif_transpose(orig)
            a = np.asarray(orig)
            if src_mode == "F" or (a.size and (a.min() < 0 or a.max() > 65535)):
                raise ImageError(f"{src_mode} samples beyond 16-bit integers cannot be stored losslessly")
            return Samples(a.astype(np.uint16)[..., None], "L", 16, info)
    im = loaded.image
    notes = [n for n in loaded.notes if "converted to RGB" not in n]
    if src_mode in _CONVERTED:
        notes.append(f"{src_mode} converted to RGB; stored losslessly as RGB")
        info.pop("icc_profile", None)
    exif, xmp = metadata(im)
    if exif:
        info["exif"] = exif
    if xmp:
        info["xmp"] = xmp
    a = np.asarray(im)
    return Samples(a[..., None] if a.ndim == 2 else a, im.mode, 8, info, notes)


def write_samples(s: Samples, fmt: str, quality: int = 95) -> bytes:
    """Samples -> image file bytes; 16-bit samples only as PNG."""
    a = s.array
    if s.bits == 16:
        if fmt != "PNG":
            raise ImageError("16-bit output is written as PNG: name the output .png")
        import png

        buf = io.BytesIO()
        h, w, planes = a.shape
        png.Writer(w, h, greyscale=planes in (1, 2), alpha=planes in (2, 4), bitdepth=16).write(
            buf, a.reshape(h, w * planes)
        )
        return buf.getvalue()
    im = Image.fromarray(np.ascontiguousarray(a[..., 0] if a.shape[2] == 1 else a), s.mode)
    return encode_image(im, fmt, quality, **s.info)
