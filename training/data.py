"""Random training crops from any folder of images, held in memory.

The whole folder is decoded once: a few hundred photographs fit easily in memory, and decoding
JPEGs for every step would cost more than a small model's forward pass on this CPU.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from aecompress.images import IMAGE_SUFFIXES


def list_images(folder: str | Path) -> list[Path]:
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"no images found in {folder}")
    return files


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        return np.asarray(im, dtype=np.uint8)


class CropSampler:
    """Uniformly random crops with flips; large images also enter at half size.

    Downscaling large photographs by two removes sensor noise and JPEG artifacts from the targets,
    which is closer to the benchmark images than the raw full-size pixels. With shrink=2 every
    image is shrunk first (clean targets for the denoiser), and only that copy is kept.
    """

    def __init__(self, files: list[Path], crop: int, seed: int = 0, shrink: int = 1) -> None:
        self.crop = crop
        self.rng = random.Random(seed)
        self.images: list[np.ndarray] = []
        for f in files:
            a = load_rgb(f)
            if shrink > 1:
                h, w = a.shape[:2]
                a = np.asarray(Image.fromarray(a).resize((w // shrink, h // shrink), Image.LANCZOS))
                if min(a.shape[:2]) >= crop:
                    self.images.append(a)
                continue
            if min(a.shape[:2]) >= crop:
                self.images.append(a)
            if min(a.shape[:2]) >= 2 * crop and max(a.shape[:2]) >= 1000:
                h, w = a.shape[:2]
                half = Image.fromarray(a).resize((w // 2, h // 2), Image.LANCZOS)
                self.images.append(np.asarray(half))
        if not self.images:
            raise SystemExit(f"no image is at least {crop}x{crop}")

    def batch(self, n: int) -> torch.Tensor:
        """(n, 3, crop, crop) float in [0, 1]."""
        return torch.from_numpy(self.batch_uint8(n)).permute(0, 3, 1, 2).float().div_(255.0)

    def batch_uint8(self, n: int) -> np.ndarray:
        """(n, crop, crop, 3) uint8."""
        out = np.empty((n, self.crop, self.crop, 3), dtype=np.uint8)
        for i in range(n):
            a = self.rng.choice(self.images)
            y = self.rng.randrange(a.shape[0] - self.crop + 1)
            x = self.rng.randrange(a.shape[1] - self.crop + 1)
            c = a[y : y + self.crop, x : x + self.crop]
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            if self.rng.random() < 0.5:
                c = c.transpose(1, 0, 2)
            out[i] = c
        return out
