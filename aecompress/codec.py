"""compress(image) -> .lat bytes and decompress(.lat bytes) -> image, the steps in order:

image -> RGB floats, padded -> ONNX encoder -> gain, round -> entropy code -> container
container -> entropy decode -> inverse gain -> ONNX decoder -> crop, round -> image
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import container, entropy, images, models, runtime
from aecompress.tiling import pad_to_multiple, run_tiled

# Latents are clipped far beyond anything a trained encoder emits, so that a pathological input
# cannot overflow the escape code.
_LATENT_LIMIT = 1 << 24
# Large images go through the models in tiles (bounded memory) with a halo wider than each
# transform's receptive field (about 61 pixels for the encoder, a few latents for the decoder),
# so the result matches the untiled one. The sizes are fixed: the same image always gives the same
# file, whatever the machine. Decoder tiles of 64 latents (1024 pixels) hold a 768x512 photo
# whole; 32 did a third more work there in halos and took 40% longer (tile size does not change
# the decoded pixels, bit for bit), at about 150 MB more peak memory on large images.
ENCODE_TILE, ENCODE_HALO = 1024, 64
DECODE_TILE, DECODE_HALO = 64, 8
DECODERS = ("auto", "float", "int8")
# The 8-bit decoder runs on the CPU only where its PSNR cost, measured on Kodak at that level
# and recorded in the manifest by training/evaluate.py, is below this.
INT8_MAX_LOSS_DB = 0.1


class Codec:
    """One loaded codec model: ONNX sessions (created on first use) and entropy tables."""

    def __init__(
        self,
        model_id: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        root: Path | None = None,
        decoder: str = "auto",
    ) -> None:
        self.info = models.get(model_id, "codec", root)
        # Each file is checked when first used: a compress run never reads the decoders.
        self.info.verify(["tables"])
        self.device = device
        self.threads = threads
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r} (choose from {', '.join(DECODERS)})")
        if decoder == "int8" and "decoder_int8" not in self.info.files:
            raise models.ModelError(f"model {self.info.id} has no 8-bit decoder")
        self.decoder = decoder
        self.tables = entropy.EntropyTables.load(self.info.path("tables"))
        with np.load(self.info.path("tables")) as z:
            self.gain = z["gain"].astype(np.float32)
            self.igain = z["igain"].astype(np.float32)
        self.stride = int(self.info.meta.get("stride", 16))
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()  # -j runs share a codec: create each session once
        self.timings: dict[str, float] | None = None

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
        """The device that actually ran (or will run) the encoder."""
        return self.provider_of("encoder")

    def provider_of(self, role: str) -> str:
        return runtime.provider_name(self._session(role))

    def check_quality(self, quality: int) -> None:
        if not 1 <= quality <= self.levels:
            raise ValueError(f"quality must be 1..{self.levels}, got {quality}")

    def compress(self, im: Image.Image, quality: int) -> bytes:
        self.check_quality(quality)
        if im.mode not in container.MODES:
            raise images.ImageError(f"unsupported mode {im.mode}")
        w, h = im.size
        pad_r, pad_b = -w % self.stride, -h % self.stride
        # uint8 until a tile is handed to the model: a 24-megapixel photo stays 72 MB, not 288.
        rgb = np.asarray(im.convert("RGB") if im.mode != "RGB" else im).transpose(2, 0, 1)
        rgb, _, _ = pad_to_multiple(rgb, self.stride)
        with self._timed("model"):
            y = run_tiled(self._encode_tile, rgb, ENCODE_TILE, ENCODE_HALO, 1 / self.stride)
        with self._timed("entropy"):
            scaled = y * self.gain[quality - 1][:, None, None]
            q = np.clip(np.rint(scaled), -_LATENT_LIMIT, _LATENT_LIMIT).astype(np.int32)
            del y, scaled
            payload = entropy.encode(q, self.tables, quality - 1)
        alpha = images.save_alpha(im.getchannel("A")) if im.mode in ("LA", "RGBA") else None
        icc = im.info.get("icc_profile") or None
        header = container.Header(
            quality=quality,
            mode=im.mode,
            width=w,
            height=h,
            pad_right=pad_r,
            pad_bottom=pad_b,
            latent_shape=tuple(int(v) for v in q.shape),
            model_id=self.info.id,
            model_hash=self.info.hash,
            has_alpha=alpha is not None,
            has_icc=icc is not None,
        )
        return container.LatFile(header, payload, alpha, icc).pack()

    def _encode_tile(self, x: np.ndarray) -> np.ndarray:
        return runtime.run(self._session("encoder"), {"image": x.astype(np.float32) * np.float32(1 / 255)})

    def decoder_role(self, quality: int) -> str:
        """Which decoder file decodes a level: "decoder" (float) or "decoder_int8"."""
        if self.decoder != "auto":
            return "decoder_int8" if self.decoder == "int8" else "decoder"
        if "decoder_int8" not in self.info.files or runtime.providers_for(self.device)[0] != "CPUExecutionProvider":
            return "decoder"
        cost = self.info.meta.get("kodak", {}).get("int8_decoder_psnr_change", {}).get(str(quality))
        return "decoder_int8" if cost is not None and -cost < INT8_MAX_LOSS_DB else "decoder"

    def _decode_tile(self, y: np.ndarray, role: str) -> np.ndarray:
        x = runtime.run(self._session(role), {"latents": y})
        return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)

    def decompress(self, lat: container.LatFile) -> Image.Image:
        hd = lat.header
        if hd.model_id != self.info.id or hd.model_hash != self.info.hash:
            raise models.ModelError(
                f"file was made by model {hd.model_id} ({hd.model_hash.hex()[:12]}), "
                f"not this {self.info.id} ({self.info.hash.hex()[:12]})"
            )
        self.check_quality(hd.quality)
        s = self.stride
        c, lh, lw = hd.latent_shape
        if (lh * s, lw * s) != (hd.height + hd.pad_bottom, hd.width + hd.pad_right) or max(
            hd.pad_right, hd.pad_bottom
        ) >= s:
            raise container.FormatError("corrupted file: latent shape does not match the image size")
        with self._timed("entropy"):
            q = entropy.decode(lat.latents, (c, lh, lw), self.tables, hd.quality - 1)
            y = q.astype(np.float32) * self.igain[hd.quality - 1][:, None, None]
            del q
        with self._timed("model"):
            role = self.decoder_role(hd.quality)
            x = run_tiled(lambda t: self._decode_tile(t, role), y, DECODE_TILE, DECODE_HALO, self.stride)
        rgb = x[:, : hd.height, : hd.width].transpose(1, 2, 0)
        im = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
        if hd.mode in ("L", "LA"):
            im = im.convert("L")
        if lat.alpha is not None:
            im.putalpha(images.load_alpha(lat.alpha, (hd.width, hd.height)))
        if lat.icc is not None:
            im.info["icc_profile"] = lat.icc
        return im


class CodecPool:
    """Codecs by model id, so a batch of files from different models loads each model once."""

    def __init__(
        self, device: str = "auto", threads: int | None = None, root: Path | None = None, decoder: str = "auto"
    ) -> None:
        self.device, self.threads, self.root, self.decoder = device, threads, root, decoder
        self._codecs: dict[str | None, Codec] = {}

    def get(self, model_id: str | None = None) -> Codec:
        if model_id not in self._codecs:
            self._codecs[model_id] = Codec(model_id, self.device, self.threads, self.root, self.decoder)
        return self._codecs[model_id]


def compress(im: Image.Image, quality: int | None = None, model_id: str | None = None) -> bytes:
    """Library entry point: PIL image (any mode Pillow has) -> .lat bytes."""
    codec = Codec(model_id)
    im = images.to_codec_mode(im)
    return codec.compress(im, quality or default_quality(codec))


def decompress(data: bytes) -> Image.Image:
    lat = container.parse(data)
    return Codec(lat.header.model_id).decompress(lat)


def default_quality(codec: Codec) -> int:
    return int(codec.info.meta.get("default_quality", (codec.levels + 1) // 2))
