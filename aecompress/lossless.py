"""Lossless and near-lossless coding, the integer path:

samples -> [near-lossless: uniform quantiser of step 2N + 1] -> planes (RCT for colour) ->
reversible wavelet (each plane's kernel chosen per level) -> context coder -> one section per
resolution, and back.

Planes: L -> [L]; LA -> [L, A]; RGB -> [Y, Cb, Cr]; RGBA -> [Y, Cb, Cr, A]. Alpha is always
exact, also in near-lossless mode. With max_error N every colour sample is replaced by the
centre of its bin of 2N + 1 values (the bin's index is what is coded), so the decoded sample is
within N of the input, guaranteed, and the coded values need about log2(2N + 1) bits fewer
each. Decoding to 1/2^j of the size stops the inverse wavelet j levels early and reads only the
sections it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aecompress import container, lossless_coder, models, reversible, wavelet
from aecompress.images import Samples
from aecompress.lossless_coder import LosslessTables, Plane

PLANES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
KINDS = {"L": (0,), "LA": (0, 0), "RGB": (0, 1, 2), "RGBA": (0, 1, 2, 0)}


class CorruptError(ValueError):
    """Decoded samples fall outside the image's range: the file is damaged."""


@dataclass(frozen=True)
class Layout:
    """What a decoder needs besides the sections (the .lat header carries it)."""

    mode: str
    bits: int
    width: int
    height: int
    max_error: int
    shifts: tuple[int, ...]
    kernel: str | None = None  # version 4's one kernel; None: chosen per plane and level (version 5)

    @property
    def levels(self) -> int:
        return wavelet.levels_for(self.height, self.width)

    @property
    def maxval(self) -> int:
        return (1 << self.bits) - 1

    def planes(self) -> list[Plane]:
        return [Plane(k, s) for k, s in zip(KINDS[self.mode], self.shifts, strict=True)]


def colour_channels(mode: str) -> int:
    return 3 if mode.startswith("RGB") else 1


def quantise(x: np.ndarray, max_error: int) -> np.ndarray:
    """Samples -> bin indices of width 2N + 1 (N = max_error), centres at multiples of 2N + 1."""
    return (x.astype(np.int32) + max_error) // (2 * max_error + 1)


def dequantise(q: np.ndarray, max_error: int, maxval: int) -> np.ndarray:
    # Clipping the top bin's centre to the range only brings it closer to the sample.
    return np.minimum(q * (2 * max_error + 1), maxval)


# The Laplacian estimate overstates what leaving the (9,7)-M gains at the fine levels (the
# context coder predicts its details better than their histogram says): another kernel must
# promise this share fewer bits (chosen on the validation photographs, not Kodak).
KERNEL_MARGIN = 0.01
DEFAULT_KERNEL = "9/7-M"


def detail_cost(details: tuple) -> float:
    """Bits a level's detail bands would take if each were Laplacian: what the kernel choice
    minimises (the context coder's bits follow it, and cost far more to count)."""
    total = 0.0
    for d in details:
        if d.size:
            total += d.size * float(np.log2(np.abs(d).mean() + 0.6))
    return total


CHOICE_TILE = 128  # a large level's kernel is chosen on a 2 x 2 grid (CHOICE_GRID) of tiles of this side
CHOICE_GRID = 2


def choice_tiles(low: np.ndarray) -> list[np.ndarray]:
    """Where a level's kernels are compared: the whole low band when it is small, else tiles
    spread over it (at even offsets, so that each keeps the band's even/odd phases): the
    encoder then runs only the chosen kernel over the whole band, in time and memory."""
    h, w = low.shape
    t, g = CHOICE_TILE, CHOICE_GRID
    if h < 2 * t or w < 2 * t or h * w <= 2 * g * g * t * t:
        return [low]
    ys = [((h - t) * i // (g - 1)) & ~1 for i in range(g)]
    xs = [((w - t) * i // (g - 1)) & ~1 for i in range(g)]
    return [low[y : y + t, x : x + t] for y in ys for x in xs]


def forward_adaptive(plane: np.ndarray, levels: int, lows: list) -> tuple[list, list[str]]:
    """reversible.forward with each level's kernel chosen (greedily, from the finest) for the
    fewest estimated bits -> (bands, kernels from the coarsest); lows as reversible.forward's."""
    low = np.asarray(plane, dtype=np.int32)
    details, kernels, lls = [], [], []
    for _ in range(levels):
        tiles = choice_tiles(low)
        whole = len(tiles) == 1  # a small level: the candidates are the transform itself
        best = None
        for kernel in reversible.KERNELS:
            made = [reversible.step_forward(tile, kernel) for tile in tiles]
            cost = sum(detail_cost(det) for _, det in made)
            if kernel != DEFAULT_KERNEL:
                cost += KERNEL_MARGIN * abs(cost)
            if best is None or cost < best[0]:
                best = (cost, kernel, made[0] if whole else None)
        _, kernel, done = best
        low, det = done if done is not None else reversible.step_forward(low, kernel)
        details.append(det)
        kernels.append(kernel)
        lls.append(low)
    lows[:] = lls[::-1]
    return [low] + details[::-1], kernels[::-1]


def encode(a: np.ndarray, mode: str, bits: int, tables: LosslessTables, max_error: int = 0) -> tuple[Layout, list]:
    """a: (H, W, C) integer samples of the mode (C = 1..4) -> (layout, sections' bytes)."""
    h, w = a.shape[:2]
    levels = wavelet.levels_for(h, w)
    nc = colour_channels(mode)
    colour = quantise(a[..., :nc], max_error) if max_error else a[..., :nc]
    planes = reversible.rct_forward(colour) if nc == 3 else [colour[..., 0].astype(np.int32)]
    if mode.endswith("A"):
        planes.append(a[..., -1].astype(np.int32))
    del colour
    bands, lows, kernels = [], [], []
    for i in range(len(planes)):
        lows.append([])
        b, k = forward_adaptive(planes[i], levels, lows[-1])
        bands.append(b)
        kernels.append(k)
        planes[i] = None
    shifts = tuple(lossless_coder.choose_shift(b[-1][2] if levels else b[0][:0], bits) for b in bands)
    layout = Layout(mode, bits, w, h, max_error, shifts)
    return layout, lossless_coder.encode(bands, layout.planes(), levels, tables, lows, kernels)


def decode(sections: list, layout: Layout, tables: LosslessTables, drop: int = 0) -> np.ndarray:
    """-> (H', W', C) uint8 or uint16 samples, H' = ceil(H / 2^drop) for drop <= levels: the
    inverse wavelet stops `drop` levels early. Raises CorruptError where the full image falls
    outside the sample range (a preview is clipped instead: its averages may round past it)."""
    levels = layout.levels
    upto = levels - min(drop, levels)
    shapes = wavelet.band_shapes(layout.height, layout.width, levels)
    planes = lossless_coder.decode(sections, shapes, layout.planes(), levels, tables, upto, layout.kernel)
    nc = colour_channels(layout.mode)
    top = layout.maxval if not layout.max_error else (layout.maxval + layout.max_error) // (2 * layout.max_error + 1)
    out = np.empty(planes[0].shape + (len(planes),), np.uint16 if layout.bits > 8 else np.uint8)
    # Channel by channel into the output: no int32 copy of the whole image; a full decode out of
    # range is a damaged file, a preview's averages are clipped.
    if nc == 3:
        y, cb, cr = planes[:3]
        planes[:3] = [None] * 3
        g = y - ((cb + cr) >> 2)
        del y
        _store(out, 1, g, top, upto == levels)
        cr += g
        _store(out, 0, cr, top, upto == levels)
        del cr
        cb += g
        _store(out, 2, cb, top, upto == levels)
        del cb, g
    else:
        _store(out, 0, planes[0], top, upto == levels)
    if layout.mode.endswith("A"):
        _store(out, nc, planes[-1], layout.maxval, upto == levels)
    if layout.max_error:
        for i in range(nc):
            out[..., i] = dequantise(out[..., i].astype(np.int32), layout.max_error, layout.maxval)
    return out


def _store(out: np.ndarray, i: int, v: np.ndarray, top: int, exact: bool) -> None:
    if exact:
        if v.size and (int(v.min()) < 0 or int(v.max()) > top):
            raise CorruptError("corrupted file: decoded samples out of range")
        out[..., i] = v
    else:
        out[..., i] = np.clip(v, 0, top)


class LosslessCodec:
    """One loaded lossless model (its context tables): Samples <-> .lat bytes (version 5; a
    version 4 file decodes with the model it names)."""

    def __init__(self, model_id: str | None = None, root: Path | None = None) -> None:
        self.info = models.get(model_id, "lossless", root)
        self.info.verify()
        self.tables = LosslessTables.load(self.info.path("tables"))
        self.strip = False  # True: EXIF and XMP are not stored (the ICC profile always is)

    def compress(self, s: Samples, max_error: int = 0) -> bytes:
        """max_error 0: lossless; N > 0: every colour sample within N (alpha stays exact)."""
        if s.mode not in PLANES or s.bits not in (8, 16) or s.array.ndim != 3 or s.array.shape[2] != PLANES[s.mode]:
            raise ValueError(f"samples must be L, LA, RGB or RGBA of 8 or 16 bits, not {s.mode} of {s.bits}")
        if not 0 <= max_error < 1 << 15:
            raise ValueError(f"max_error must be 0..32767, got {max_error}")
        layout, sections = encode(s.array, s.mode, s.bits, self.tables, max_error)
        icc = s.info.get("icc_profile") or None
        exif, xmp = (None, None) if self.strip else (s.info.get("exif") or None, s.info.get("xmp") or None)
        header = container.Header(
            quality=0,
            mode=s.mode,
            width=layout.width,
            height=layout.height,
            model_id=self.info.id,
            model_hash=self.info.hash,
            has_alpha=s.mode.endswith("A"),
            has_icc=icc is not None,
            has_exif=exif is not None,
            has_xmp=xmp is not None,
            version=container.INTEGER_VERSION,
            coding="near-lossless" if max_error else "lossless",
            bits=s.bits,
            kernel=container.ADAPTIVE,
            max_error=max_error,
            shifts=layout.shifts,
        )
        return container.LatFile(header, b"", None, icc, exif, xmp, tuple(sections)).pack()

    def check_model(self, hd: container.Header) -> None:
        if hd.model_id != self.info.id or hd.model_hash != self.info.hash:
            raise models.ModelError(
                f"file was made by model {hd.model_id} ({hd.model_hash.hex()[:12]}), "
                f"not this {self.info.id} ({self.info.hash.hex()[:12]})"
            )

    def decompress(self, lat: container.LatFile, drop: int = 0) -> Samples:
        """A parsed version 4 or 5 file -> its samples; drop j levels for 1/2^j of the size (sides
        rounded up). lat may hold only the first sections a preview needs."""
        hd = lat.header
        self.check_model(hd)
        levels = hd.levels
        need = levels + 1 - min(drop, levels)
        if len(lat.sections) < need:
            raise container.FormatError("truncated file: a resolution section is missing")
        kernel = None if hd.kernel == container.ADAPTIVE else hd.kernel
        layout = Layout(hd.mode, hd.bits, hd.width, hd.height, hd.max_error, hd.shifts, kernel)
        try:
            a = decode(list(lat.sections[:need]), layout, self.tables, drop)
        except (lossless_coder.LosslessError, CorruptError) as e:
            raise container.FormatError(str(e)) from None
        if drop > levels:  # a preview smaller than the coarsest band: every k-th sample of it
            k = 1 << (drop - levels)
            a = np.ascontiguousarray(a[::k, ::k])
        info = {k: v for k, v in (("icc_profile", lat.icc), ("exif", lat.exif), ("xmp", lat.xmp)) if v is not None}
        return Samples(a, hd.mode, hd.bits, info)
