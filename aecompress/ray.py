"""Ray Data adapters: callable classes for `ray.data.Dataset.map_batches` (the `ray` extra).

Each is a class, so Ray runs it in an actor pool and every worker loads its model once:

    import ray
    from aecompress.ray import Compress

    ds = ray.data.read_binary_files("photos/", include_paths=True)
    ds = ds.map_batches(Compress, fn_constructor_kwargs={"quality": 7}, concurrency=4, batch_size=16)
    ds.select_columns(["path", "lat"]).write_parquet("compressed/")

Compress reads each image's file bytes (column "bytes", as `read_binary_files` gives them) the
way `aec compress` reads a file, so the .lat bytes are identical to the command line's; an
"image" column of arrays (as `read_images` gives) works too. For CUDA workers pass Ray's
`num_gpus=1` to map_batches and `device="cuda"` in fn_constructor_kwargs. A row that fails gets
an empty output and its one-line reason in the "error" column; the rest of the batch goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _errors() -> tuple[type[BaseException], ...]:
    from aecompress import container, entropy, images, models

    return (container.FormatError, entropy.EntropyError, images.ImageError, models.ModelError, ValueError, OSError)


def _column(batch: dict, *names: str) -> tuple[str, Any]:
    for n in names:
        if n in batch:
            return n, batch[n]
    raise KeyError(f"the batch has none of the columns {', '.join(names)} (it has {', '.join(batch)})")


class Compress:
    """Batch {"bytes" or "image": ...} -> the same batch plus "lat" (bytes) and "error"."""

    def __init__(
        self,
        quality: int | None = None,
        model: str | None = None,
        device: str = "auto",
        threads: int | None = None,
        tune: str | None = None,
    ):
        from aecompress import models
        from aecompress.codec import Codec, default_quality

        self.codec = Codec(models.codec_id(model, tune), device, threads)
        self.quality = quality or default_quality(self.codec)
        self.codec.check_quality(self.quality)

    def __call__(self, batch: dict) -> dict:
        from aecompress import images

        name, col = _column(batch, "bytes", "image")
        out, errors = [], []
        for item in col:
            try:
                src = images.open_image(bytes(item)).image if name == "bytes" else item
                out.append(self.codec.compress(src, self.quality))
                errors.append("")
            except _errors() as e:
                out.append(b"")
                errors.append(str(e))
        return {**batch, "lat": np.array(out, dtype=object), "error": np.array(errors, dtype=object)}


class Decompress:
    """Batch {"lat": bytes} -> plus "png" (bytes, output="png") or "image" (arrays) and "error"."""

    def __init__(self, output: str = "png", device: str = "auto", threads: int | None = None):
        from aecompress.codec import CodecPool

        if output not in ("png", "image"):
            raise ValueError("output must be 'png' or 'image'")
        self.output = output
        self.pool = CodecPool(device, threads)

    def __call__(self, batch: dict) -> dict:
        from aecompress import container, images

        out, errors = [], []
        for data in batch["lat"]:
            try:
                lat = container.parse(bytes(data))
                im = self.pool.get(lat.header.model_id).decompress(lat)
                out.append(images.encode_image(im, "PNG") if self.output == "png" else np.asarray(im))
                errors.append("")
            except _errors() as e:
                out.append(b"" if self.output == "png" else np.zeros((0, 0, 3), np.uint8))
                errors.append(str(e))
        return {**batch, self.output: np.array(out, dtype=object), "error": np.array(errors, dtype=object)}


class Denoise:
    """Batch {"bytes" or "image": ...} -> plus "denoised" (PNG bytes, or arrays of the input's
    dtype) and "error"."""

    def __init__(
        self, sigma: float | None = None, model: str | None = None, device: str = "auto", threads: int | None = None
    ):
        from aecompress.denoiser import Denoiser

        self.net = Denoiser(model, device, threads)
        self.sigma = sigma

    def __call__(self, batch: dict) -> dict:
        name, col = _column(batch, "bytes", "image")
        out, errors = [], []
        for item in col:
            try:
                out.append(self.net(bytes(item) if name == "bytes" else item, self.sigma))
                errors.append("")
            except _errors() as e:
                out.append(b"" if name == "bytes" else np.zeros((0, 0, 3), np.uint8))
                errors.append(str(e))
        return {**batch, "denoised": np.array(out, dtype=object), "error": np.array(errors, dtype=object)}
