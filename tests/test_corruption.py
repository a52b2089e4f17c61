"""Seeded corruptions of a real .lat file: each is refused cleanly, or decodes to exactly the
intact file's pixels. A silently different picture is a failure."""

import numpy as np
import pytest
from conftest import corruptions, smooth_image
from PIL import Image

from aecompress import codec, container, entropy, images, models

CLEAN = (container.FormatError, entropy.EntropyError, images.ImageError, models.ModelError)


@pytest.fixture(scope="module")
def original():
    cod = codec.Codec(device="cpu", threads=1)
    rgba = np.dstack([smooth_image(45, 29), np.full((29, 45), 200, np.uint8)])
    data = cod.compress(Image.fromarray(rgba, "RGBA"), 3)
    return cod, data, cod.decompress(container.parse(data)).tobytes()


def test_every_corruption_is_clean(original):
    cod, data, pixels = original
    for kind, bad in corruptions(data, 800):
        try:
            out = cod.decompress(container.parse(bad))
        except CLEAN:
            continue
        assert out.tobytes() == pixels, f"{kind}: corrupted file decoded to a different picture"


def test_cli_refuses_corruptions_in_one_line(original, tmp_path):
    from conftest import run_aec

    _, data, _ = original
    for i, (kind, bad) in enumerate(corruptions(data, 12, seed=7)):
        src = tmp_path / f"c{i}.lat"
        src.write_bytes(bad)
        r = run_aec("decompress", str(src))
        if r.returncode == 0:  # a harmless change (none expected): output must be the original
            continue
        lines = r.stderr.decode().strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in lines[0], (kind, lines)
        assert not (tmp_path / f"c{i}.png").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
