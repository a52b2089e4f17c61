"""compress(image) -> .lat bytes and decompress(.lat bytes) -> image, the steps in order:

image -> Y Cb Cr (ICT) -> CDF 9/7 wavelet -> dead-zone quantiser -> context-coded bands -> container
container -> context decoding -> dequantiser -> inverse wavelet -> RGB -> ONNX post-filter -> image

The transform (aecompress.transform) is JPEG 2000's in NumPy, or for a model that names encoder
and synthesis graphs the same lifting with learned corrections at its coarser levels; either is
exactly invertible, so quality has no ceiling: a fine enough step reproduces any image. What
is learned besides is the entropy coder's
context tables, fitted to training images, and the decoder's post-filter, a small network that
removes ringing and blur from the wavelet reconstruction and is told the level's step.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import container, entropy, images, models, quantise, runtime, transform, wavelet
from aecompress.inputs import to_pil
from aecompress.latents import Latents
from aecompress.lossless import LosslessCodec
from aecompress.tiling import pad_to_multiple, run_tiled

# The post-filter runs on tiles (bounded memory) with a halo wider than its receptive field (12
# pixels), so tiling never changes the result. Sizes are even: the filter works on 2x2 blocks.
FILTER_TILE, FILTER_HALO = 768, 16


class Codec:
    """One loaded codec model: its context tables and (created on first use) its post-filter."""

    def __init__(
        self,
        model_id: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        root: Path | None = None,
    ) -> None:
        self.info = models.get(model_id, "codec", root)
        # Each file is checked when first used: a compress run never reads the post-filter.
        self.info.verify(["tables"])
        self.device = device
        self.threads = threads
        self.tables = entropy.ContextTables.load(self.info.path("tables"))
        self.strip = False  # True: EXIF and XMP are not stored (the ICC profile always is)
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()  # -j runs share a codec: create each session once
        self.timings: dict[str, float] | None = None
        self.transform = transform.for_model(self.info, self._session)

    @contextmanager
    def _timed(self, phase: str):
        """Adds the phase's wall time to self.timings when a caller (the benchmark) set it."""
        if self.timings is None:
            yield
            return
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - t0

    @property
    def levels(self) -> int:
        return self.tables.levels

    def _session(self, role: str):
        with self._lock:
            if role not in self._sessions:
                self._sessions[role] = models.load_session(self.info, role, self.device, self.threads)
            return self._sessions[role]

    @property
    def provider(self) -> str:
        """The device that actually ran (or will run) the post-filter."""
        return runtime.provider_name(self._session("decoder"))

    def check_quality(self, quality: int) -> None:
        if not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be 1..{self.levels}, got {quality}")

    def step(self, quality: int) -> float:
        return float(self.tables.steps[quality - 1])

    def coefficients(self, im: Image.Image) -> list:
        """Per channel (Y, Cb, Cr), the wavelet subbands [LL, (HL, LH, HH) coarsest .. finest]."""
        rgb = np.asarray(im.convert("RGB") if im.mode != "RGB" else im)
        levels = wavelet.levels_for(*rgb.shape[:2])
        return [self.transform.forward(wavelet.rgb_to_ycc_channel(rgb, c), levels) for c in range(3)]

    def _payload(self, coeffs: list, quality: int, keep: bool = False, reuse: bool = False) -> tuple[bytes, list]:
        """Quantise and code the subbands at a level -> (payload, the chosen integers if keep).
        Without reuse the coefficients are scaled in place and let go as they are coded (a
        24-megapixel photo holds its coefficients once); reuse leaves them for another level."""
        levels = len(coeffs[0]) - 1
        steps = quantise.band_steps(self.step(quality), levels, self.tables.band_scale)
        ints, scaled = [], []
        for c in range(3):
            ints.append([quantise.quantise(coeffs[c][0], steps[c][0], 0.5)] + [None] * levels)
            scaled.append(quantise.scale_bands(coeffs[c], steps[c], in_place=not reuse))
        payload = entropy.encode(ints, levels, self.tables, quality - 1, scaled, keep=keep)
        return payload, ints

    def quantised_bands(self, im: Image.Image, quality: int) -> list:
        """The integer subbands the encoder chooses at a level (what a .lat file codes)."""
        coeffs = self.coefficients(im)
        return self._payload(coeffs, quality, keep=True)[1]

    def _prepare(self, image, quality: int | None, value_range) -> tuple[Image.Image, int]:
        im = (
            image if isinstance(image, Image.Image) and image.mode in container.MODES else to_pil(image, value_range)[0]
        )
        quality = default_quality(self) if quality is None else quality
        self.check_quality(quality)
        return im, quality

    def compress(self, image, quality: int | None = None, value_range: tuple[float, float] | None = None) -> bytes:
        """An image (PIL, NumPy array, path or file bytes: see aecompress.api) -> .lat bytes."""
        im, quality = self._prepare(image, quality, value_range)
        with self._timed("transform"):
            coeffs = self.coefficients(im)
        with self._timed("entropy"):
            payload, _ = self._payload(coeffs, quality)
        del coeffs
        return self._pack(im, quality, payload)

    def compress_to(
        self,
        image,
        target_bpp: float | None = None,
        target_psnr: float | None = None,
        max_bytes: int | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> tuple[bytes, int]:
        """-> (.lat bytes, level): the highest level whose whole file stays within target_bpp or
        max_bytes (level 1 if none does), or the lowest whose decoded PSNR (RGB, with the
        post-filter) reaches target_psnr (the top level if none does). The transform runs once;
        each level tried is only quantised and coded (and for PSNR decoded). Bisection: about
        four levels tried of twelve."""
        if sum(v is not None for v in (target_bpp, target_psnr, max_bytes)) != 1:
            raise ValueError("give exactly one of target_bpp, target_psnr, max_bytes")
        im, _ = self._prepare(image, 1, value_range)
        w, h = im.size
        coeffs = self.coefficients(im)
        ref = np.asarray(im.convert("RGB"), dtype=np.float64) if target_psnr is not None else None
        tried: dict[int, tuple[bytes, bool]] = {}

        def ok(q: int) -> bool:
            if q not in tried:
                payload, ints = self._payload(coeffs, q, keep=target_psnr is not None, reuse=True)
                data = self._pack(im, q, payload)
                if target_psnr is not None:
                    rgb = self.reconstruct(ints, q, (h, w), consume=True)
                    good = images.psnr(rgb, ref) >= target_psnr
                else:
                    budget = max_bytes if max_bytes is not None else target_bpp * w * h / 8
                    good = len(data) <= budget
                tried[q] = (data, good)
            return tried[q][1]

        lo, hi = 1, self.levels
        if target_psnr is not None:  # lowest level that is good enough
            while lo < hi:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
            ok(lo)
            return tried[lo][0], lo
        while lo < hi:  # highest level within budget
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid - 1)
        ok(lo)
        return tried[lo][0], lo

    def _pack(self, im: Image.Image, quality: int, payload: bytes) -> bytes:
        w, h = im.size
        alpha = images.save_alpha(im.getchannel("A")) if im.mode in ("LA", "RGBA") else None
        icc = im.info.get("icc_profile") or None
        exif, xmp = (None, None) if self.strip else images.metadata(im)
        header = container.Header(
            quality=quality,
            mode=im.mode,
            width=w,
            height=h,
            model_id=self.info.id,
            model_hash=self.info.hash,
            has_alpha=alpha is not None,
            has_icc=icc is not None,
            has_exif=exif is not None,
            has_xmp=xmp is not None,
        )
        return container.LatFile(header, payload, alpha, icc, exif, xmp).pack()

    def _filter_tile(self, x: np.ndarray, step: float) -> np.ndarray:
        return runtime.run(
            self._session("decoder"),
            {"image": np.asarray(x, dtype=np.float32), "step": np.array([step], dtype=np.float32)},
        )

    def encode_latents(self, image, quality: int | None = None, value_range: tuple[float, float] | None = None):
        """An image -> Latents: the integer subbands a .lat file would code."""
        im, quality = self._prepare(image, quality, value_range)
        w, h = im.size
        levels = wavelet.levels_for(h, w)
        bands = self.quantised_bands(im, quality)
        steps = quantise.band_steps(self.step(quality), levels, self.tables.band_scale)
        return Latents(bands, w, h, im.mode, quality, self.info.id, steps)

    def decode_latents(self, latents) -> Image.Image:
        if latents.model != self.info.id:
            raise models.ModelError(f"latents of model {latents.model}, not this {self.info.id}")
        self.check_quality(latents.quality)
        levels = wavelet.levels_for(latents.height, latents.width)
        shapes = wavelet.band_shapes(latents.height, latents.width, levels)
        for ch in latents.bands:
            if (
                len(ch) != levels + 1
                or ch[0].shape != shapes[0]
                or any(
                    b.shape != s for t, st in zip(ch[1:], shapes[1:], strict=True) for b, s in zip(t, st, strict=True)
                )
            ):
                raise ValueError("latents do not match the image size")
        rgb = self.reconstruct(latents.bands, latents.quality, (latents.height, latents.width))
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        return im.convert("L") if latents.mode in ("L", "LA") else im

    def __getstate__(self) -> dict:
        # ONNX sessions and locks do not pickle: a worker process rebuilds them on first use.
        state = self.__dict__.copy()
        state["_sessions"], state["_lock"], state["timings"], state["transform"] = {}, None, None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self.transform = transform.for_model(self.info, self._session)

    def check_model(self, hd: container.Header) -> None:
        if hd.model_id != self.info.id or hd.model_hash != self.info.hash:
            raise models.ModelError(
                f"file was made by model {hd.model_id} ({hd.model_hash.hex()[:12]}), "
                f"not this {self.info.id} ({self.info.hash.hex()[:12]})"
            )
        self.check_quality(hd.quality)

    def decode_bands(self, lat: container.LatFile) -> list:
        hd = lat.header
        self.check_model(hd)
        levels = wavelet.levels_for(hd.height, hd.width)
        shapes = wavelet.band_shapes(hd.height, hd.width, levels)
        return entropy.decode(lat.payload, shapes, levels, self.tables, hd.quality - 1)

    def reconstruct(
        self, bands: list, quality: int, size: tuple[int, int], filtered: bool = True, consume: bool = False
    ) -> np.ndarray:
        """Integer subbands of an image of size (h, w) -> (h, w, 3) uint8 RGB; filtered=False skips
        the post-filter (the plain wavelet decoder); consume lets go of each channel's integers
        as soon as they are dequantised (the decoder's peak memory)."""
        rgb = self._inverse(bands, quality, size, consume)
        if not filtered:
            return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        return self._filter(rgb, quality, size)

    def _inverse(self, bands: list, quality: int, size: tuple[int, int], consume: bool) -> np.ndarray:
        """-> (3, h, w) float32 RGB on 0..255, before the post-filter."""
        h, w = size
        levels = len(bands[0]) - 1
        steps = quantise.band_steps(self.step(quality), levels, self.tables.band_scale)
        with self._timed("transform"):
            rgb = np.empty((3, h, w), dtype=np.float32)
            for c in range(3):
                channel = bands[c]
                if consume:
                    bands[c] = None
                    channel = list(channel)
                deq = quantise.dequantise_bands(channel, steps[c], consume)
                del channel
                rgb[c] = self.transform.inverse(deq)
                del deq
            wavelet.ycc_to_rgb(rgb, out=rgb)
        return rgb

    def _filter(self, rgb: np.ndarray, quality: int, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        with self._timed("model"):
            rgb *= np.float32(1 / 255)
            if h % 2 or w % 2:
                rgb, _, _ = pad_to_multiple(rgb, 2)
            step = self.step(quality)
            # Tiles come back as 8-bit pixels: the full-size float result is never held.
            out = run_tiled(lambda t: _to_uint8(self._filter_tile(t, step)), rgb, FILTER_TILE, FILTER_HALO)
        return np.ascontiguousarray(out[:, :h, :w].transpose(1, 2, 0))

    def decompress(self, lat: container.LatFile, drop: int = 0) -> Image.Image:
        """A parsed file -> the image; drop j levels for a preview at 1/2^j of the size (sides
        rounded up), which stops the inverse wavelet early and skips the post-filter. A version
        3 file is entropy-decoded whole (its layout has no resolution sections)."""
        if drop:
            return self.preview(lat, drop)
        return self.finish(self.unfiltered(lat))

    def preview(self, lat: container.LatFile, drop: int) -> Image.Image:
        hd = lat.header
        bands = self.decode_bands(lat)
        levels = len(bands[0]) - 1
        upto = levels - min(drop, levels)
        steps = quantise.band_steps(self.step(hd.quality), levels, self.tables.band_scale)
        h, w = -(-hd.height // (1 << (levels - upto))), -(-hd.width // (1 << (levels - upto)))
        rgb = np.empty((3, h, w), np.float32)
        for c in range(3):
            rgb[c] = self.transform.inverse(quantise.dequantise_bands(bands[c][: upto + 1], steps[c][: upto + 1]), upto)
        wavelet.ycc_to_rgb(rgb, out=rgb)
        a = np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        if drop > levels:  # smaller than the coarsest band: every k-th sample of it
            k = 1 << (drop - levels)
            a = a[::k, ::k]
        im = Image.fromarray(np.ascontiguousarray(a), "RGB")
        if hd.mode in ("L", "LA"):
            im = im.convert("L")
        if lat.alpha is not None:
            im.putalpha(images.load_alpha(lat.alpha, (hd.width, hd.height)).resize(im.size, Image.BOX))
        if lat.icc is not None:
            im.info["icc_profile"] = lat.icc
        return im

    def unfiltered(self, lat: container.LatFile) -> tuple[container.LatFile, np.ndarray]:
        """The first half of decompress: entropy decoding and the inverse wavelet, all in NumPy
        and Python. A batch runs it for the next file while the post-filter (ONNX Runtime, which
        releases the GIL) works on this one."""
        hd = lat.header
        with self._timed("entropy"):
            bands = self.decode_bands(lat)
        return lat, self._inverse(bands, hd.quality, (hd.height, hd.width), consume=True)

    def finish(self, half: tuple[container.LatFile, np.ndarray]) -> Image.Image:
        """The second half of decompress: post-filter, then mode, alpha and metadata."""
        lat, rgb = half
        hd = lat.header
        rgb = self._filter(rgb, hd.quality, (hd.height, hd.width))
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        if hd.mode in ("L", "LA"):
            im = im.convert("L")
        if lat.alpha is not None:
            im.putalpha(images.load_alpha(lat.alpha, (hd.width, hd.height)))
        if lat.icc is not None:
            im.info["icc_profile"] = lat.icc
        if lat.exif is not None:
            im.info["exif"] = lat.exif
        if lat.xmp is not None:
            im.info["xmp"] = lat.xmp
        return im


def _to_uint8(x: np.ndarray) -> np.ndarray:
    x *= np.float32(255)
    np.rint(x, out=x)
    np.clip(x, 0, 255, out=x)
    return x.astype(np.uint8)


def roundtrip(
    rgb: np.ndarray,
    base: float,
    tables=None,
    level: int = 0,
    scale: np.ndarray | None = None,
    wavelet_transform: transform.Transform | None = None,
) -> tuple[np.ndarray, list]:
    """(3, H, W) 0..255 -> (decoded float RGB before any post-filter, integer bands per channel).
    What the codec does; with context tables (and the level's index in them) the encoder's
    rate-distortion choices too; with wavelet_transform (anything with Transform's forward and
    inverse) a learned wavelet instead of the fixed one. Training uses it to make post-filter
    inputs and to fit tables."""
    wt = wavelet_transform or transform.Transform()
    h, w = rgb.shape[-2:]
    levels = wavelet.levels_for(h, w)
    ycc = wavelet.rgb_to_ycc(rgb)
    if scale is None and tables is not None:
        scale = tables.band_scale
    steps = quantise.band_steps(base, levels, scale)
    ints, scaled = [], []
    for c in range(3):
        bands = wt.forward(ycc[c], levels)
        ints.append(quantise.quantise_bands(bands, steps[c]))
        scaled.append(quantise.scale_bands(bands, steps[c]))
    if tables is not None:
        entropy.encode(ints, levels, tables, level, scaled, dry_run=True)
    out = np.empty_like(ycc)
    for c in range(3):
        out[c] = wt.inverse(quantise.dequantise_bands(ints[c], steps[c]))
    return wavelet.ycc_to_rgb(out), ints


class CodecPool:
    """Codecs by model id, so a batch of files from different models loads each model once."""

    def __init__(self, device: str = "auto", threads: int | None = None, root: Path | None = None) -> None:
        self.device, self.threads, self.root = device, threads, root
        self._codecs: dict = {}

    def get(self, model_id: str | None = None) -> Codec:
        if model_id not in self._codecs:
            self._codecs[model_id] = Codec(model_id, self.device, self.threads, self.root)
        return self._codecs[model_id]

    def lossless(self, model_id: str | None = None) -> LosslessCodec:
        """The lossless model of that id (files of version 4 or 5), loaded once per pool."""
        key = ("lossless", model_id)
        if key not in self._codecs:
            self._codecs[key] = LosslessCodec(model_id, self.root)
        return self._codecs[key]


def default_quality(codec: Codec) -> int:
    return codec.info.default_quality
