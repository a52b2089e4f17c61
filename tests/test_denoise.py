import io

import numpy as np
import png
import pytest
from conftest import run_aec, smooth_image
from PIL import Image

from aecompress import denoiser, images
from aecompress.images import psnr
from aecompress.noise_level import estimate_sigma


@pytest.fixture(scope="module")
def net() -> denoiser.Denoiser:
    return denoiser.Denoiser(device="cpu", threads=1)


def noisy_image(w=160, h=120, sigma=25.0, seed=0):
    clean = smooth_image(w, h, seed).astype(np.float64)
    noisy = np.clip(np.rint(clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)), 0, 255)
    return clean, noisy.astype(np.uint8)


@pytest.mark.parametrize("sigma", [10, 25, 50])
def test_blind_estimate_is_close(sigma):
    _, noisy = noisy_image(256, 192, sigma)
    true = np.hypot(sigma, 3.0)  # smooth_image carries texture of sigma 3 of its own
    assert abs(estimate_sigma(noisy) - true) < 0.15 * true + 2.0


def test_denoiser_removes_noise(net):
    clean, noisy = noisy_image()
    out = net.run_float(noisy.astype(np.float32) / 255) * 255
    assert psnr(clean, out) > psnr(clean, noisy) + 3


def test_tiled_matches_untiled(net):
    clean, noisy = noisy_image(300, 200)
    x = noisy.astype(np.float32) / 255
    whole = net.run_float(x, 25.0, tile=4096) * 255
    tiled = net.run_float(x, 25.0, tile=96) * 255
    assert abs(psnr(clean, whole) - psnr(clean, tiled)) < 0.05
    assert np.max(np.abs(whole - tiled)) < 2.0  # no seams


def test_tiny_images(net):
    for w, h in [(1, 1), (3, 7), (9, 2)]:
        assert net.run_float(np.full((h, w, 3), 0.5, np.float32)).shape == (h, w, 3)


def test_alpha_icc_exif_kept(tmp_path):
    _, noisy = noisy_image(64, 48)
    alpha = np.random.default_rng(1).integers(0, 256, (48, 64), dtype=np.uint8)
    im = Image.fromarray(np.dstack([noisy, alpha]), "RGBA")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    src = tmp_path / "n.png"
    im.save(src, icc_profile=b"fake-icc-profile", exif=exif)
    r = run_aec("denoise", str(src))
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "n.denoised.png")
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out.getchannel("A")), alpha)
    assert out.info.get("icc_profile") == b"fake-icc-profile"
    assert out.getexif().get(0x010F) == "TestCam"


def test_sixteen_bit_stays_sixteen_bit(tmp_path):
    clean, noisy = noisy_image(40, 32)
    a16 = noisy.astype(np.uint16) * 257
    src = tmp_path / "deep.png"
    with open(src, "wb") as f:
        png.Writer(40, 32, greyscale=False, bitdepth=16).write(f, a16.reshape(32, 40 * 3))
    r = run_aec("denoise", str(src), "-o", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    w, h, rows, meta = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert meta["bitdepth"] == 16 and (w, h) == (40, 32)
    out = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(32, 40, 3)
    assert psnr(clean, out / 257) > psnr(clean, noisy)


def test_grayscale_stays_grayscale(tmp_path):
    _, noisy = noisy_image(50, 40)
    src = tmp_path / "g.png"
    Image.fromarray(noisy[..., 0]).save(src)
    assert run_aec("denoise", str(src)).returncode == 0
    assert Image.open(tmp_path / "g.denoised.png").mode == "L"


def test_cli_folder_stdin_and_bad_sigma(tmp_path):
    _, noisy = noisy_image(48, 40)
    src = tmp_path / "a.png"
    Image.fromarray(noisy).save(src)
    r = run_aec("denoise", str(src), "-o", f"{tmp_path}/clean/", "--sigma", "25")
    assert r.returncode == 0 and (tmp_path / "clean" / "a.png").exists()
    r = run_aec("denoise", "-", input=src.read_bytes())
    assert r.returncode == 0 and r.stdout[:4] == b"\x89PNG"
    r = run_aec("denoise", str(src), "--sigma", "loud")
    assert r.returncode == 2
    r = run_aec("denoise", str(src), "-o", str(src), "-f")
    assert r.returncode == 1 and b"refusing to overwrite the input" in r.stderr


def test_read_pixels_round_trip_8bit():
    _, noisy = noisy_image(20, 10)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="PNG")
    px = images.read_pixels(buf.getvalue())
    assert px.bits == 8 and not px.gray
    back = np.asarray(Image.open(io.BytesIO(images.write_pixels(px, "PNG"))))
    assert np.array_equal(back, noisy)
