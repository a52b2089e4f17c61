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
