"""The bitstream of a shipped model never changes: files made by release 0.2.0 (tests/data,
made from golden.png) must be what the encoder writes today and decode to the same integers.
A change to the coder that alters them needs a new model id (and the old files an error that
names the release that reads them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecompress import container
from aecompress.codec import Codec

DATA = Path(__file__).parent / "data"
MODEL = "cdf97-ctx-v3"


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(MODEL)


@pytest.mark.parametrize("quality", [1, 6, 12])
def test_encoder_writes_the_released_bytes(codec, quality):
    made = codec.compress(Image.open(DATA / "golden.png"), quality)
    assert made == (DATA / f"golden-q{quality}.lat").read_bytes()


@pytest.mark.parametrize("quality", [1, 6, 12])
def test_released_files_decode_to_the_encoders_integers(codec, quality):
    lat = container.parse((DATA / f"golden-q{quality}.lat").read_bytes())
    decoded = codec.decode_bands(lat)
    chosen = codec.quantised_bands(Image.open(DATA / "golden.png"), quality)
    for dc, cc in zip(decoded, chosen, strict=True):
        np.testing.assert_array_equal(dc[0], cc[0])
        for dt, ct in zip(dc[1:], cc[1:], strict=True):
            for d, c in zip(dt, ct, strict=True):
                np.testing.assert_array_equal(d, c)


def test_cli_decompresses_a_released_file(tmp_path):
    from conftest import run_aec

    out = tmp_path / "back.png"
    r = run_aec("decompress", str(DATA / "golden-q6.lat"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    back = np.asarray(Image.open(out))
    ref = np.asarray(Image.open(DATA / "golden.png"))
    assert back.shape == ref.shape
    # Level 6 of a busy 101x67 picture: close to it, not equal.
    mse = np.mean((back.astype(float) - ref) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28  # 29.5 dB when written
