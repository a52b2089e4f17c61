"""The library API: input types in, the same types out, clear errors, reuse across processes."""

import io
import pickle
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image

import aecompress
from aecompress.images import psnr


def test_import_is_light():
    code = "import sys, aecompress; assert 'onnxruntime' not in sys.modules and 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr


def test_numpy_uint8_round_trip_keeps_type_and_shape():
    a = smooth_image(40, 30)
    data = aecompress.compress(a, quality=8)
    out = aecompress.decompress(data, output="numpy")
    assert out.dtype == np.uint8 and out.shape == a.shape and psnr(a, out) > 30


def test_pil_and_bytes_and_path(tmp_path):
    im = Image.fromarray(smooth_image(33, 21))
    assert aecompress.decompress(aecompress.compress(im)).size == (33, 21)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert aecompress.decompress(aecompress.compress(buf.getvalue())).size == (33, 21)
    p = tmp_path / "x.png"
    im.save(p)
    lat = tmp_path / "x.lat"
    lat.write_bytes(aecompress.compress(p))
    assert aecompress.decompress(lat).size == (33, 21)


def test_denoise_follows_input_type():
    clean = smooth_image(48, 40)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    out8 = aecompress.denoise(noisy)
    assert out8.dtype == np.uint8 and out8.shape == noisy.shape
    assert psnr(clean, out8) > psnr(clean, noisy) + 3
    out16 = aecompress.denoise(noisy.astype(np.uint16) * 257)
    assert out16.dtype == np.uint16 and abs(psnr(clean, out16 / 257) - psnr(clean, out8)) < 0.5
    outf = aecompress.denoise(noisy / 255.0, value_range=(0, 1))
    assert outf.dtype == np.float64 and 0 <= outf.min() and outf.max() <= 1
    pil = aecompress.denoise(Image.fromarray(noisy))
    assert isinstance(pil, Image.Image) and pil.size == (48, 40)
    gray = aecompress.denoise(noisy[..., 0])
    assert gray.shape == (40, 48)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="PNG")
    png = aecompress.denoise(buf.getvalue())
    assert isinstance(png, bytes) and Image.open(io.BytesIO(png)).size == (48, 40)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.int64),
        np.zeros((4, 4, 5), np.uint8),
        np.zeros((0, 4), np.uint8),
        np.zeros((2, 4, 4, 3), np.uint8),
        np.zeros((4, 4), np.float32),  # float without value_range
        42,
    ],
)
def test_wrong_inputs_raise_value_error(bad):
    with pytest.raises(ValueError):
        aecompress.compress(bad)
    with pytest.raises(ValueError):
        aecompress.denoise(bad)


def test_float_array_needs_its_range_and_is_not_silently_wrong():
    a = smooth_image(32, 32)
    ok = aecompress.decompress(aecompress.compress(a / 255.0, quality=10, value_range=(0, 1)), output="numpy")
    assert psnr(a, ok) > 35


def test_latents_round_trip_exactly():
    a = smooth_image(64, 48)
    cod = aecompress.Codec(device="cpu")
    lat = cod.encode_latents(a, 5)
    assert all(b.dtype == np.int32 for b in [lat.bands[0][0], *lat.bands[0][1]])
    assert lat.flat().size > 0
    via_file = cod.decompress(__import__("aecompress.container").container.parse(cod.compress(a, 5)))
    assert np.array_equal(np.asarray(cod.decode_latents(lat)), np.asarray(via_file))
    assert np.array_equal(np.asarray(aecompress.decode_latents(lat)), np.asarray(via_file))


def _compress_in_worker(args):
    cod, a = args
    return cod.compress(a, 4)


def test_codec_pickles_to_worker_processes():
    cod = aecompress.Codec(device="cpu", threads=1)
    a = smooth_image(40, 32)
    here = cod.compress(a, 4)
    assert pickle.loads(pickle.dumps(cod)).compress(a, 4) == here
    with ProcessPoolExecutor(2) as pool:
        assert list(pool.map(_compress_in_worker, [(cod, a)] * 2)) == [here, here]
    den = aecompress.Denoiser(device="cpu", threads=1)
    noisy = smooth_image(24, 24)
    assert np.array_equal(pickle.loads(pickle.dumps(den))(noisy), den(noisy))


def test_codec_is_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    cod = aecompress.Codec(device="cpu", threads=1)
    imgs = [smooth_image(36, 28, seed=i) for i in range(4)]
    serial = [
        cod.decompress(__import__("aecompress.container").container.parse(cod.compress(a, 6))).tobytes() for a in imgs
    ]
    with ThreadPoolExecutor(4) as pool:
        par = list(pool.map(lambda a: aecompress.decompress(aecompress.compress(a, 6)).tobytes(), imgs))
    assert par == serial


def test_functions_reuse_one_model_per_device():
    from aecompress import api

    a = smooth_image(24, 16)
    aecompress.decompress(aecompress.compress(a, quality=3, device="cpu"), device="cpu")
    cod = api._get("codec", None, "cpu")
    sessions = dict(cod._sessions)
    aecompress.decompress(aecompress.compress(a, quality=4, device="cpu"), device="cpu")
    assert api._get("codec", None, "cpu") is cod and cod._sessions == sessions


def test_tune_in_the_api():
    photo = smooth_image(64, 48)
    assert aecompress.compress(photo, quality=3, tune="psnr") == aecompress.compress(photo, quality=3)
    with pytest.raises(ValueError, match="tune must be"):
        aecompress.compress(photo, tune="butteraugli")
    with pytest.raises(ValueError, match="not both"):
        aecompress.compress(photo, tune="psnr", model="cdf97-ctx-v4")
    with pytest.raises(ValueError, match="lossy"):
        aecompress.compress(photo, tune="psnr", lossless=True)
