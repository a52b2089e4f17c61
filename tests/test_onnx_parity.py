"""The shipped ONNX files compute what the PyTorch model computes (needs the train extra)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from aecompress import models  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "training" / "weights"


@pytest.fixture(scope="module")
def pair():
    from training.export import load_codec

    info = models.get()
    path = WEIGHTS / f"{info.id}.pt"
    if not path.exists():
        pytest.skip(f"no PyTorch weights for {info.id}")
    model, _ = load_codec(path)
    return info, model


def test_encoder_decoder_match_pytorch(pair):
    info, model = pair
    x = torch.rand(1, 3, 80, 112)
    enc = ort.InferenceSession(str(info.path("encoder")), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(info.path("decoder")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        y = model.g_a(x)
        x_hat = model.g_s(torch.round(y))
    y_onnx = enc.run(None, {"image": x.numpy()})[0]
    np.testing.assert_allclose(y_onnx, y.numpy(), atol=2e-3, rtol=1e-3)
    x_onnx = dec.run(None, {"latents": torch.round(y).numpy()})[0]
    np.testing.assert_allclose(x_onnx, x_hat.numpy(), atol=2e-3, rtol=1e-3)


def test_tables_match_pytorch_prior(pair):
    info, model = pair
    _, offsets, sizes = model.prior.cdf_tables(16)
    with np.load(info.path("tables")) as z:
        assert np.array_equal(z["offsets"], offsets)
        assert np.array_equal(z["sizes"], sizes)
        np.testing.assert_allclose(z["gain"], model.log_gain.detach().exp().numpy(), rtol=1e-6)


def test_denoiser_matches_pytorch():
    from training.nets import Denoiser

    info = models.get(None, "denoiser")
    path = WEIGHTS / f"{info.id}.pt"
    if not path.exists():
        pytest.skip(f"no PyTorch weights for {info.id}")
    net = Denoiser()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["model"])
    net.eval()
    x, s = torch.rand(1, 3, 72, 56), torch.full((1, 1, 72, 56), 0.1)
    sess = ort.InferenceSession(str(info.path("model")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x, s).numpy()
    got = sess.run(None, {"noisy": x.numpy(), "sigma": s.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
