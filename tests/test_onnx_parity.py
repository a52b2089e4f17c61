"""The shipped ONNX files compute what the PyTorch model computes (needs the train extra)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from aecompress import models  # noqa: E402

WEIGHTS = Path(__file__).resolve().parents[1] / "training" / "weights"


@pytest.mark.parametrize("tune", models.TUNES)
def test_post_filter_matches_pytorch(tune):
    from training.export import load_postfilter

    info = models.get(models.tuned(tune))
    path = WEIGHTS / f"{info.id}.pt"
    if not path.exists():
        pytest.skip(f"no PyTorch weights for {info.id}")
    model, _ = load_postfilter(path)
    x, step = torch.rand(1, 3, 80, 112), torch.tensor([11.3])
    sess = ort.InferenceSession(str(info.path("decoder")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(x, step).numpy()
    got = sess.run(None, {"image": x.numpy(), "step": step.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_denoiser_matches_pytorch():
    from training.export import load_denoiser

    info = models.get(None, "denoiser")
    path = WEIGHTS / f"{info.id}.pt"
    if not path.exists():
        pytest.skip(f"no PyTorch weights for {info.id}")
    net, _ = load_denoiser(path)
    x, s = torch.rand(1, 3, 72, 56), torch.full((1, 1, 72, 56), 0.1)
    sess = ort.InferenceSession(str(info.path("model")), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x, s).numpy()
    got = sess.run(None, {"noisy": x.numpy(), "sigma": s.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
