"""The .lat file format: a versioned header, then CRC-checked sections. Pure Python.

Layout (all integers little-endian; the spec with field meanings is in docs/format.md):

    header   magic "AECL", version u8, flags u8, quality u8, mode u8, width u32, height u32,
             model_id_len u8, model_id (ASCII), model_hash 16 bytes, header_crc32 u32
    payload  length u32, crc32 u32, entropy-coded words (the quantised wavelet subbands)
    alpha    (only if flags bit 0) length u32, crc32 u32, PNG of the alpha plane
    icc      (only if flags bit 1) length u32, crc32 u32, the ICC profile
    exif     (only if flags bit 2) length u32, crc32 u32, the EXIF block (orientation applied)
    xmp      (only if flags bit 3) length u32, crc32 u32, the XMP packet

Versions 4 and 5 hold the integer path (lossless and near-lossless, aecompress.lossless):

    header   magic "AECL", version u8 = 4 or 5, flags u8, coding u8, mode u8, bits u8, kernel u8,
             max_error u16, width u32, height u32, one shift u8 per plane, model_id_len u8,
             model_id, model_hash 16 bytes, header_crc32 u32
    icc, exif, xmp as flagged (length u32, crc32 u32, data each)
    one section per resolution: the low band, then each detail level from the coarsest

so that a preview at 1/2^j is a prefix of the file (`prefix_length`). Lossy files stay version 3.
Version 5 (0.6) differs inside the detail sections (kernels per plane and level, activity
scales, raw signs: aecompress.lossless_coder) and has kernel 0 in the header.

Files of earlier versions (block-transform latents) are refused with the release that reads them.

Every length and checksum is verified before anything is decoded, so a truncated, spliced or
bit-flipped file is refused before a model runs.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from aecompress.bands import levels_for
from aecompress.errors import FormatError

MAGIC = b"AECL"
VERSION = 3  # lossy files
INTEGER_VERSION = 5  # lossless and near-lossless files (version 4: 0.4 and 0.5's, still read)
INTEGER_VERSIONS = (4, 5)
CODINGS = {1: "lossless", 2: "near-lossless"}
ADAPTIVE = "per level"  # version 5: each plane's kernel per level is in its resolution section
# The header's kernel byte, per version: version 4's one kernel for every level; version 5's 0.
KERNELS = {4: ("5/3", "9/7-M"), 5: (ADAPTIVE,)}
PLANES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
MAX_RESOLUTIONS = 9  # levels (at most 8) + 1
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
_FIXED4 = struct.Struct("<4sBBBBBBHII")
_SECTION = struct.Struct("<II")


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
    # versions 4 and 5 only
    coding: str = "lossy"
    bits: int = 8
    kernel: str = "9/7-M"
    max_error: int = 0
    shifts: tuple[int, ...] = ()

    @property
    def integer(self) -> bool:
        """A lossless or near-lossless file (version 4 or 5)."""
        return self.version in INTEGER_VERSIONS

    @property
    def levels(self) -> int:
        """Detail levels of the wavelet (fixed by the size)."""
        return levels_for(self.height, self.width)

    def _flags(self) -> int:
        return (
            (FLAG_ALPHA if self.has_alpha and not self.integer else 0)
            | (FLAG_ICC if self.has_icc else 0)
            | (FLAG_EXIF if self.has_exif else 0)
            | (FLAG_XMP if self.has_xmp else 0)
        )

    def pack(self) -> bytes:
        mid = self.model_id.encode("ascii")
        if not 0 < len(mid) < 256 or len(self.model_hash) != 16:
            raise ValueError("model id must be 1..255 ASCII bytes and the hash 16 bytes")
        if self.integer:
            if len(self.shifts) != PLANES[self.mode] or self.bits not in (8, 16) or not 0 <= self.max_error < 1 << 15:
                raise ValueError("bad integer-path header fields")
            fixed = _FIXED4.pack(
                MAGIC,
                self.version,
                self._flags(),
                next(k for k, v in CODINGS.items() if v == self.coding),
                MODES.index(self.mode),
                self.bits,
                KERNELS[self.version].index(self.kernel),
                self.max_error,
                self.width,
                self.height,
            )
            body = fixed + bytes(self.shifts) + bytes([len(mid)]) + mid + self.model_hash
            return body + struct.pack("<I", zlib.crc32(body))
        fixed = _FIXED.pack(
            MAGIC,
            self.version,
            self._flags(),
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
    sections: tuple[bytes, ...] = ()  # versions 4, 5: the resolutions, coarsest first (maybe a prefix)

    def pack(self) -> bytes:
        hd = self.header
        if hd.integer:
            if len(self.sections) != hd.levels + 1 or self.alpha is not None:
                raise ValueError("an integer-path file has one section per resolution and no alpha section")
            extras = [_section(x) for x in (self.icc, self.exif, self.xmp) if x is not None]
            return b"".join([hd.pack(), *extras, *(_section(x) for x in self.sections)])
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


def _check_version(buf: bytes) -> int:
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
    if version not in (VERSION, *INTEGER_VERSIONS):
        raise FormatError(
            f"unsupported .lat version {version} (this aec reads versions {VERSION} to {INTEGER_VERSION}; "
            "try a newer aecompress)"
        )
    return version


def _header_end(buf: bytes, version: int) -> int:
    """Where the header (CRC included) ends; raises FormatError if the buffer is shorter."""
    if version in INTEGER_VERSIONS:
        if len(buf) < _FIXED4.size:
            raise FormatError("truncated file: header incomplete")
        mode = buf[7]
        if mode >= len(MODES):
            raise FormatError(f"unknown colour mode code {mode}")
        at = _FIXED4.size + PLANES[MODES[mode]]
        if len(buf) < at + 1:
            raise FormatError("truncated file: header incomplete")
        end = at + 1 + buf[at] + 16
    else:
        if len(buf) < _FIXED.size:
            raise FormatError("truncated file: header incomplete")
        end = _FIXED.size + buf[_FIXED.size - 1] + 16
    if len(buf) < end + 4:
        raise FormatError("truncated file: header incomplete")
    return end + 4


def prefix_length(fh: BinaryIO, drop: int) -> int:
    """How many bytes from the start of a version 4 or 5 file a preview that drops `drop` levels
    needs: the header, the metadata and the coarse resolution sections. -1 for any other file
    (read it whole). Reads only the header and the sections' lengths, seeking over their data."""
    start = fh.tell()
    head = fh.read(_FIXED4.size)
    if len(head) < _FIXED4.size or head[:4] != MAGIC or head[4] not in INTEGER_VERSIONS or head[7] >= len(MODES):
        return -1
    width, height = struct.unpack_from("<II", head, 12)
    levels = levels_for(height, width)
    resolutions = levels + 1 - min(drop, levels)
    head += fh.read(PLANES[MODES[head[7]]] + 1)
    head += fh.read(head[-1] + 16 + 4)
    pos = len(head)
    for _ in range(sum(bool(head[5] & f) for f in (FLAG_ICC, FLAG_EXIF, FLAG_XMP)) + resolutions):
        sec = fh.read(_SECTION.size)
        if len(sec) < _SECTION.size:
            break
        (length,) = struct.unpack_from("<I", sec)
        pos += _SECTION.size + length
        fh.seek(start + pos)
    return pos


def parse(buf: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, resolutions: int | None = None) -> LatFile:
    """Parse and verify a whole .lat file; raises FormatError with a one-line reason. For a
    version 4 or 5 file, resolutions=n reads (and verifies) at most the first n resolution sections
    that buf holds, and buf may end there (a preview reads a prefix of the file)."""
    version = _check_version(buf)
    if version in INTEGER_VERSIONS:
        return _parse_integer(buf, max_pixels, resolutions)
    return _parse_lossy(buf, max_pixels)


def _check_geometry(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise FormatError("image has zero width or height")
    if width * height > max_pixels:
        raise FormatError(
            f"image of {width}x{height} exceeds the {max_pixels}-pixel limit (raise it with --max-pixels)"
        )


def _model_id(buf: bytes, start: int, id_len: int) -> str:
    try:
        return bytes(buf[start : start + id_len]).decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("corrupted file: model id is not ASCII") from None


def _parse_integer(buf: bytes, max_pixels: int, resolutions: int | None) -> LatFile:
    end = _header_end(buf, INTEGER_VERSION) - 4
    (crc,) = struct.unpack_from("<I", buf, end)
    if zlib.crc32(bytes(buf[:end])) != crc:
        raise FormatError("corrupted file: header checksum mismatch")
    (_, version, flags, coding, mode, bits, kernel, max_error, width, height) = _FIXED4.unpack_from(buf, 0)
    if flags & ~(FLAG_ICC | FLAG_EXIF | FLAG_XMP):
        raise FormatError(f"unknown header flags {flags:#x}")
    if coding not in CODINGS:
        raise FormatError(f"unknown coding {coding}")
    if bits not in (8, 16) or kernel >= len(KERNELS[version]):
        raise FormatError("corrupted file: bad bit depth or wavelet")
    if (coding == 1) != (max_error == 0):
        raise FormatError("corrupted file: coding and max_error disagree")
    _check_geometry(width, height, max_pixels)
    planes = PLANES[MODES[mode]]
    shifts = tuple(buf[_FIXED4.size : _FIXED4.size + planes])
    if max(shifts) > bits - 8:
        raise FormatError("corrupted file: bad bit split")
    id_at = _FIXED4.size + planes + 1
    header = Header(
        quality=0,
        mode=MODES[mode],
        width=width,
        height=height,
        model_id=_model_id(buf, id_at, buf[id_at - 1]),
        model_hash=bytes(buf[end - 16 : end]),
        has_alpha=MODES[mode].endswith("A"),
        has_icc=bool(flags & FLAG_ICC),
        has_exif=bool(flags & FLAG_EXIF),
        has_xmp=bool(flags & FLAG_XMP),
        version=version,
        coding=CODINGS[coding],
        bits=bits,
        kernel=KERNELS[version][kernel],
        max_error=max_error,
        shifts=shifts,
    )
    pos = end + 4
    extras: dict[str, bytes | None] = {"icc": None, "exif": None, "xmp": None}
    for name, flag, label in (("icc", FLAG_ICC, "ICC profile"), ("exif", FLAG_EXIF, "EXIF"), ("xmp", FLAG_XMP, "XMP")):
        if flags & flag:
            extras[name], pos = _read_section(buf, pos, label)
    total = header.levels + 1
    want = total if resolutions is None else max(1, min(resolutions, total))
    sections = []
    for i in range(want):
        if resolutions is not None and i and pos == len(buf):
            break  # a prefix: the decoder checks it holds what the preview needs
        data, pos = _read_section(buf, pos, f"resolution {i}")
        sections.append(data)
    if want == total and pos != len(buf):
        raise FormatError(f"corrupted file: {len(buf) - pos} unexpected bytes after the last section")
    return LatFile(header, b"", None, extras["icc"], extras["exif"], extras["xmp"], tuple(sections))


def _parse_lossy(buf: bytes, max_pixels: int) -> LatFile:
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
    _check_geometry(width, height, max_pixels)
    model_id = _model_id(buf, _FIXED.size, id_len)
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
