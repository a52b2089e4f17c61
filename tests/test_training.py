"""Training-side pieces that the runtime depends on: relevelling a model, fitting context tables."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aecompress import entropy  # noqa: E402
from training.codec_model import CodecConfig, GainedFactorizedCodec  # noqa: E402
from training.entropy_model import factorized_tables, fit_context_tables  # noqa: E402
from training.relevel import relevel  # noqa: E402


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    model = GainedFactorizedCodec(CodecConfig(n=8, m=24, arch="balle", lambdas=[0.001, 0.004, 0.016]))
    with torch.no_grad():
        model.log_gain.add_(torch.randn_like(model.log_gain) * 0.1)
    return model


def _state(model):
    return {"config": model.cfg.to_dict(), "model": model.state_dict(), "step": 7}


def test_relevel_to_the_same_levels_changes_nothing(small):
    out = relevel(_state(small), small.cfg.lambdas)
    for k, v in small.state_dict().items():
        assert torch.allclose(out["model"][k], v, atol=1e-6), k


def test_relevel_rescales_the_prior_with_the_gain(small):
    """A new level between two trained ones: its prior, evaluated at latents scaled by the change
    of gain from the nearest trained level, gives that level's CDF exactly."""
    lam = [small.cfg.lambdas[0], 0.0015, small.cfg.lambdas[2]]
    new = GainedFactorizedCodec(CodecConfig(**relevel(_state(small), lam)["config"]))
    new.load_state_dict(relevel(_state(small), lam)["model"])
    scale = (new.log_gain[1] - small.log_gain[0]).exp()  # level 0 is the nearest in log(lambda)
    x = torch.linspace(-5, 5, 11).expand(1, small.cfg.m, -1)
    with torch.no_grad():
        old_logits = small.prior.logits_cdf(x, torch.tensor([0]))
        new_logits = new.prior.logits_cdf(x * scale[None, :, None], torch.tensor([1]))
    assert torch.allclose(old_logits, new_logits, atol=1e-4)


def _correlated_latents(rng, channels, n, h=12, w=10):
    """Latents whose spread varies smoothly over the image and is shared by all channels, as a
    transform's coefficients are where an image is busy; coarse channels carry a smooth mean."""
    out = []
    for _ in range(n):
        yy, xx = np.mgrid[:h, :w]
        busy = 0.3 + 6 * (np.sin(xx / 3 + rng.uniform(0, 6)) * np.cos(yy / 4) > 0.3)
        q = rng.laplace(0, 1, (channels, h, w)) * busy * np.linspace(1.5, 0.3, channels)[:, None, None]
        q[0] += 20 * np.sin(xx / 5 + rng.uniform(0, 6)) + 10 * yy / h
        out.append(np.rint(q).astype(np.int64))
    return out


def test_fitted_tables_code_losslessly_and_beat_the_prior(small, tmp_path):
    rng = np.random.default_rng(0)
    m = small.cfg.m
    train = [_correlated_latents(rng, m, 30) for _ in range(3)]
    test = _correlated_latents(rng, m, 5)
    np.savez(tmp_path / "ctx.npz", **fit_context_tables(small.prior, train, k1=4, k2=3))
    np.savez(tmp_path / "plain.npz", **factorized_tables(small.prior))
    ctx, plain = (entropy.EntropyTables.load(tmp_path / f"{n}.npz") for n in ("ctx", "plain"))
    assert ctx.predicted.reshape(3, m)[:, 0].all(), "the smooth mean channel should be predicted"
    sizes = {}
    for name, t in (("ctx", ctx), ("plain", plain)):
        sizes[name] = 0
        for q in test:
            data = entropy.encode(q, t, 1)
            assert np.array_equal(entropy.decode(data, q.shape, t, 1), q)
            sizes[name] += len(data)
    assert sizes["ctx"] < 0.9 * sizes["plain"]
