"""The variable-rate codec: shared transforms, per-level latent gains, per-level priors.

One network serves every quality level (Cui et al. 2021, "Asymmetric gained deep image
compression"): the encoder's latents are multiplied by a per-level, per-channel gain before
rounding and divided by a learned inverse gain before synthesis. Training all levels at once costs
one model's compute instead of one per level, which is what this project's CPU budget allows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from training.entropy_model import FactorizedPrior
from training.nets import (
    AnalysisTransform,
    BlockAnalysis,
    BlockSynthesis,
    SynthesisTransform,
    UnshuffleAnalysis,
    UnshuffleSynthesis,
)


def default_lambdas(levels: int = 8, lo: float = 0.0018, hi: float = 0.3) -> list[float]:
    if levels == 1:
        return [lo]
    r = (hi / lo) ** (1 / (levels - 1))
    return [lo * r**i for i in range(levels)]


@dataclass
class CodecConfig:
    n: int = 64
    m: int = 192
    arch: str = "balle"
    lambdas: list[float] = field(default_factory=default_lambdas)

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict:
        return asdict(self)


class GainedFactorizedCodec(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.arch == "block":
            self.g_a, self.g_s = BlockAnalysis(cfg.m, cfg.n), BlockSynthesis(cfg.m, cfg.n)
        elif cfg.arch == "unshuffle":
            self.g_a, self.g_s = UnshuffleAnalysis(cfg.n, cfg.m), UnshuffleSynthesis(cfg.n, cfg.m)
        else:
            self.g_a, self.g_s = AnalysisTransform(cfg.n, cfg.m), SynthesisTransform(cfg.n, cfg.m)
        mid = math.sqrt(cfg.lambdas[0] * cfg.lambdas[-1])
        # Quantisation step ~ 1/sqrt(lambda) for MSE: start the levels apart so each rate is
        # trained from the first step.
        log_g = torch.tensor([0.5 * math.log(lam / mid) for lam in cfg.lambdas])
        self.log_gain = nn.Parameter(log_g[:, None].repeat(1, cfg.m).clone())
        self.log_igain = nn.Parameter(-log_g[:, None].repeat(1, cfg.m).clone())
        self.prior = FactorizedPrior(cfg.levels, cfg.m)

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.log_gain[level].exp()[:, :, None, None]
        ig = self.log_igain[level].exp()[:, :, None, None]
        return g, ig

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: returns (reconstruction, likelihoods of the noisy latents)."""
        g, ig = self.gains(level)
        y = self.g_a(x) * g
        noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        # The decoder sees truly rounded values (straight-through gradient), as it will at run
        # time; the rate term keeps the smooth noisy proxy.
        rounded = y + (torch.round(y) - y).detach()
        return self.g_s(rounded * ig), self.prior.likelihood(noisy, level)

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, level: int) -> tuple[float, float]:
        """(estimated bpp, PSNR in dB) for one image batch with real rounding."""
        lv = torch.full((x.shape[0],), level, dtype=torch.long)
        g, ig = self.gains(lv)
        q = torch.round(self.g_a(x) * g)
        x_hat = self.g_s(q * ig).clamp(0, 1)
        bits = -torch.log2(self.prior.likelihood(q, lv)).sum().item()
        bpp = bits / (x.shape[0] * x.shape[2] * x.shape[3])
        mse = torch.mean((torch.round(x_hat * 255) - torch.round(x * 255)) ** 2).item()
        return bpp, 10 * math.log10(255**2 / max(mse, 1e-10))
