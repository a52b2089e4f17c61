from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def smooth_image(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A photograph-like test image: smooth gradients, a few edges, mild texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [128 + 90 * np.sin(xx / max(w, 1) * 3 + c) * np.cos(yy / max(h, 1) * 2 - c) for c in range(3)], axis=-1
    )
    img[(xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 4) ** 2] *= 0.6
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    p = tmp_path / "photo.png"
    Image.fromarray(smooth_image(96, 64)).save(p)
    return p


def run_aec(*args: str, input: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aecompress", *args], input=input, capture_output=True, cwd=cwd, timeout=120
    )


@pytest.fixture(autouse=True, scope="session")
def _model_cache(tmp_path_factory) -> None:
    """Optimised-graph cache entries go to a temporary folder, not the user's ~/.cache (the
    aec processes the CLI tests start inherit it)."""
    import os

    os.environ["AEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("aec-cache"))


def corruptions(data: bytes, n: int, seed: int = 0):
    """Seeded damage of a file: truncations, bit flips, replaced bytes, splices."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = i % 4
        b = bytearray(data)
        if kind == 0:
            yield "truncate", bytes(b[: rng.integers(0, len(b))])
        elif kind == 1:
            for _ in range(rng.integers(1, 4)):
                pos = rng.integers(0, len(b))
                b[pos] ^= 1 << int(rng.integers(0, 8))
            yield "bitflip", bytes(b)
        elif kind == 2:
            pos = rng.integers(0, len(b))
            b[pos] = (b[pos] + int(rng.integers(1, 256))) % 256
            yield "replace", bytes(b)
        else:
            pos = rng.integers(0, len(b))
            junk = rng.integers(0, 256, rng.integers(1, 16)).astype(np.uint8).tobytes()
            cut = rng.integers(pos, len(b) + 1)
            yield "splice", bytes(b[:pos]) + junk + bytes(b[cut:])
