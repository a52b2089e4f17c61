"""The .lat file format: a versioned header, then CRC-checked sections. Pure Python.

Layout (all integers little-endian; the spec with field meanings is in docs/format.md):

    header   magic "AECL", version u8, flags u8, quality u8, mode u8, width u32, height u32,
             model_id_len u8, model_id (ASCII), model_hash 16 bytes, header_crc32 u32
    payload  length u32, crc32 u32, entropy-coded words (the quantised wavelet subbands)
    alpha    (only if flags bit 0) length u32, crc32 u32, PNG of the alpha plane
    icc      (only if flags bit 1) length u32, crc32 u32, the ICC profile
    exif     (only if flags bit 2) length u32, crc32 u32, the EXIF block (orientation applied)
    xmp      (only if flags bit 3) length u32, crc32 u32, the XMP packet

Files of earlier versions (block-transform latents) are refused with the release that reads them.

Every length and checksum is verified before anything is decoded, so a truncated, spliced or
bit-flipped file is refused before a model runs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"AECL"
VERSION = 3
# Format versions this release no longer reads, and the release line that does.
OLD_VERSIONS = {1: "aecompress<0.2", 2: "aecompress<0.2"}
FLAG_ALPHA = 1
FLAG_ICC = 2
FLAG_EXIF = 4
FLAG_XMP = 8
MODES = ("L", "LA", "RGB", "RGBA")
# Pillow's decompression-bomb limit is about 89 MP; a .lat header is refused past twice that by
# default (the same point where Pillow refuses an image), raised with max_pixels.
DEFAULT_MAX_PIXELS = 2 * 89_478_485

_FIXED = struct.Struct("<4sBBBBIIB")
_SECTION = struct.Struct("<II")


class FormatError(ValueError):
    """The bytes are not a valid .lat file (truncated, corrupted, or from another format)."""


@dataclass(frozen=True)
class Header:
    quality: int
    mode: str
    width: int
    height: int
    model_id: str
    model_hash: bytes
    has_alpha: bool = False
    has_icc: bool = False
    has_exif: bool = False
    has_xmp: bool = False
    version: int = VERSION

    def pack(self) -> bytes:
        mid = self.model_id.encode("ascii")
        if not 0 < len(mid) < 256 or len(self.model_hash) != 16:
            raise ValueError("model id must be 1..255 ASCII bytes and the hash 16 bytes")
        fixed = _FIXED.pack(
            MAGIC,
            self.version,
            (FLAG_ALPHA if self.has_alpha else 0)
            | (FLAG_ICC if self.has_icc else 0)
            | (FLAG_EXIF if self.has_exif else 0)
            | (FLAG_XMP if self.has_xmp else 0),
            self.quality,
            MODES.index(self.mode),
            self.width,
            self.height,
            len(mid),
        )
        body = fixed + mid + self.model_hash
        return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class LatFile:
    header: Header
    payload: bytes
    alpha: bytes | None = None
    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None

    def pack(self) -> bytes:
        hd = self.header
        if (
            (self.alpha is not None) != hd.has_alpha
            or (self.icc is not None) != hd.has_icc
            or (self.exif is not None) != hd.has_exif
            or (self.xmp is not None) != hd.has_xmp
        ):
            raise ValueError("optional sections must be present exactly when the header says so")
        parts = [self.header.pack(), _section(self.payload)]
        parts += [_section(extra) for extra in (self.alpha, self.icc, self.exif, self.xmp) if extra is not None]
        return b"".join(parts)


def _section(data: bytes) -> bytes:
    return _SECTION.pack(len(data), zlib.crc32(data)) + data


def _read_section(buf: bytes, pos: int, name: str) -> tuple[bytes, int]:
    if len(buf) - pos < _SECTION.size:
        raise FormatError(f"truncated file: {name} section header missing")
    length, crc = _SECTION.unpack_from(buf, pos)
    pos += _SECTION.size
    if length > len(buf) - pos:
        raise FormatError(f"truncated file: {name} section needs {length} bytes, {len(buf) - pos} left")
    data = bytes(buf[pos : pos + length])
    if zlib.crc32(data) != crc:
        raise FormatError(f"corrupted file: {name} checksum mismatch")
    return data, pos + length


def parse(buf: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> LatFile:
    """Parse and verify a whole .lat file; raises FormatError with a one-line reason."""
    if len(buf) < 4 or buf[:4] != MAGIC:
        raise FormatError("not a .lat file (bad magic)")
    if len(buf) < 5:
        raise FormatError("truncated file: header incomplete")
    version = buf[4]
    if version in OLD_VERSIONS:
        raise FormatError(
            f".lat format version {version} is from an earlier aecompress; read it with "
            f"pip install '{OLD_VERSIONS[version]}'"
        )
    if version != VERSION:
        raise FormatError(
            f"unsupported .lat version {version} (this aec reads version {VERSION}; try a newer aecompress)"
        )
    if len(buf) < _FIXED.size:
        raise FormatError("truncated file: header incomplete")
    (_, version, flags, quality, mode, width, height, id_len) = _FIXED.unpack_from(buf, 0)
    end = _FIXED.size + id_len + 16
    if len(buf) < end + 4:
        raise FormatError("truncated file: header incomplete")
    (crc,) = struct.unpack_from("<I", buf, end)
    if zlib.crc32(bytes(buf[:end])) != crc:
        raise FormatError("corrupted file: header checksum mismatch")
    if flags & ~(FLAG_ALPHA | FLAG_ICC | FLAG_EXIF | FLAG_XMP):
        raise FormatError(f"unknown header flags {flags:#x}")
    if mode >= len(MODES):
        raise FormatError(f"unknown colour mode code {mode}")
    if width < 1 or height < 1:
        raise FormatError("image has zero width or height")
    if width * height > max_pixels:
        raise FormatError(
            f"image of {width}x{height} exceeds the {max_pixels}-pixel limit (raise it with --max-pixels)"
        )
    try:
        model_id = bytes(buf[_FIXED.size : _FIXED.size + id_len]).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupted file: model id is not ASCII") from None
    header = Header(
        quality=quality,
        mode=MODES[mode],
        width=width,
        height=height,
        model_id=model_id,
        model_hash=bytes(buf[end - 16 : end]),
        has_alpha=bool(flags & FLAG_ALPHA),
        has_icc=bool(flags & FLAG_ICC),
        has_exif=bool(flags & FLAG_EXIF),
        has_xmp=bool(flags & FLAG_XMP),
        version=version,
    )
    payload, pos = _read_section(buf, end + 4, "payload")
    alpha = icc = None
    if header.has_alpha:
        alpha, pos = _read_section(buf, pos, "alpha")
    if header.has_icc:
        icc, pos = _read_section(buf, pos, "ICC profile")
    exif = xmp = None
    if header.has_exif:
        exif, pos = _read_section(buf, pos, "EXIF")
    if header.has_xmp:
        xmp, pos = _read_section(buf, pos, "XMP")
    if pos != len(buf):
        raise FormatError(f"corrupted file: {len(buf) - pos} unexpected bytes after the last section")
    return LatFile(header, payload, alpha, icc, exif, xmp)
