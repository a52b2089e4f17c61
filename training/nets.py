"""Analysis and synthesis transforms (Ballé et al. 2017 shape) with simplified GDN.

GDN here is the L1 form of Johnston et al. 2019 ("Computationally efficient neural image
compression"): y = x / (beta + gamma @ |x|). It trains as well as the square-root form and exports
to ONNX as a 1x1 convolution, an Abs and a Div, which every runtime optimises well.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GDN(nn.Module):
    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        # Square-root reparametrisation keeps beta and gamma non-negative without clamps that would
        # stop their gradients.
        self.beta_p = nn.Parameter(torch.ones(channels))
        self.gamma_p = nn.Parameter(torch.sqrt(0.1 * torch.eye(channels) + 1e-6))

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        beta = self.beta_p.pow(2) + 1e-6
        gamma = self.gamma_p.pow(2)
        return beta, gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.coefficients()
        c = gamma.shape[0]
        norm = F.conv2d(x.abs(), gamma.view(c, c, 1, 1), beta)
        return x * norm if self.inverse else x / norm


def _conv(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 5, stride=2, padding=2)
    # Variance-preserving init: PyTorch's default shrinks activations threefold per layer, so an
    # untrained model rounds almost every latent to zero and spends its first thousand steps
    # growing them back.
    nn.init.normal_(conv.weight, std=(cin * 25) ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    conv = nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)
    # Each output pixel of a stride-2 transposed conv sees about a quarter of the 5x5 taps.
    nn.init.normal_(conv.weight, std=(cin * 25 / 4) ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


class AnalysisTransform(nn.Sequential):
    """RGB in [0, 1] -> latents at 1/16 of the resolution (height and width multiples of 16)."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__(_conv(3, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n), _conv(n, m))


class SynthesisTransform(nn.Sequential):
    """Latents -> RGB, unclamped (the runtime clamps and rounds)."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__(
            _deconv(m, n),
            GDN(n, inverse=True),
            _deconv(n, n),
            GDN(n, inverse=True),
            _deconv(n, n),
            GDN(n, inverse=True),
            _deconv(n, 3),
        )
