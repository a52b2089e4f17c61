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


class _ResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Denoiser(nn.Module):
    """A small residual U-Net on a pixel-unshuffled input, steered by a noise-level map.

    Input: the noisy RGB image in [0, 1] and sigma/255 as a fourth constant channel (the FFDNet
    idea: one network for every level, and a user can turn it). The first pixel-unshuffle puts
    every convolution at a quarter of the pixels or fewer, which is what makes it affordable on a
    laptop CPU. Height and width must be multiples of 8 (the runtime pads).
    """

    def __init__(self, widths: tuple[int, int, int] = (48, 96, 192), blocks: tuple[int, int, int] = (2, 2, 2)):
        super().__init__()
        c1, c2, c3 = widths
        self.head = nn.Conv2d(16, c1, 3, padding=1)
        self.enc1 = nn.Sequential(*[_ResBlock(c1) for _ in range(blocks[0])])
        self.down1 = nn.Conv2d(c1, c2, 2, stride=2)
        self.enc2 = nn.Sequential(*[_ResBlock(c2) for _ in range(blocks[1])])
        self.down2 = nn.Conv2d(c2, c3, 2, stride=2)
        self.mid = nn.Sequential(*[_ResBlock(c3) for _ in range(blocks[2])])
        self.up2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
        self.dec2 = _ResBlock(c2)
        self.up1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.dec1 = _ResBlock(c1)
        self.tail = nn.Conv2d(c1, 12, 3, padding=1)

    def forward(self, noisy: torch.Tensor, sigma_map: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(torch.cat([noisy, sigma_map], dim=1), 2)
        e1 = self.enc1(self.head(x))
        e2 = self.enc2(self.down1(e1))
        m = self.mid(self.down2(e2))
        d2 = self.dec2(self.up2(m) + e2)
        d1 = self.dec1(self.up1(d2) + e1)
        return noisy + F.pixel_shuffle(self.tail(d1), 2)


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    nn.init.normal_(conv.weight, std=(cin * 9) ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


def _deconv3(cin: int, cout: int) -> nn.ConvTranspose2d:
    conv = nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)
    nn.init.normal_(conv.weight, std=(cin * 9 / 4) ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


class UnshuffleAnalysis(nn.Module):
    """Space-to-depth by 4, then two 3x3 layers at 1/16 of the pixels and two strided ones."""

    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv3(48, n), GDN(n), _conv3(n, n), GDN(n), _conv3(n, n, 2), GDN(n), _conv3(n, m, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.pixel_unshuffle(x, 4))


class UnshuffleSynthesis(nn.Module):
    def __init__(self, n: int, m: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _deconv3(m, n),
            GDN(n, inverse=True),
            _deconv3(n, n),
            GDN(n, inverse=True),
            _conv3(n, n),
            GDN(n, inverse=True),
            _conv3(n, 48),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.body(y), 4)


def _zero_last(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _LatentMix(nn.Sequential):
    """Residual correction in the latent domain (3x3 over neighbouring blocks); starts at zero.

    A plain leaky ReLU, not (inverse) GDN: the multiplicative inverse GDN on unbounded latents made
    training spike."""

    def __init__(self, m: int, c: int) -> None:
        super().__init__(_conv3(m, c), nn.LeakyReLU(0.1), _zero_last(_conv3(c, m)))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + super().forward(y)


class _PixelResBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv3(c, c), nn.LeakyReLU(0.1), _conv3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BlockAnalysis(nn.Module):
    """A learned block transform with learned corrections: the untrained model is a transform coder.

    The core is a 1x1 convolution over 16x16 blocks (pixel-unshuffled), initialised to the
    Karhunen-Loeve basis of training patches: at step 0 this is a 16x16 KLT coder, close to JPEG,
    instead of a random network that needs hours to become invertible. Residual branches, whose
    last layers start at zero, learn what a block transform cannot: one looks at the pixels at a
    quarter of the resolution, others mix neighbouring blocks' coefficients.
    """

    def __init__(self, m: int, c: int = 96) -> None:
        super().__init__()
        self.block = nn.Conv2d(768, m, 1)
        self.pixels = nn.Sequential(
            _conv3(48, c), nn.LeakyReLU(0.1), _conv3(c, c, 2), nn.LeakyReLU(0.1), _zero_last(_conv3(c, m, 2))
        )
        self.mix = nn.Sequential(_LatentMix(m, m), _LatentMix(m, m))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(F.pixel_unshuffle(x, 16)) + self.pixels(F.pixel_unshuffle(x, 4))
        return self.mix(y)


class BlockSynthesis(nn.Module):
    """Mirror of BlockAnalysis: latent-domain corrections, inverse block transform, then a
    deblocking network at a quarter of the resolution whose output starts at zero."""

    def __init__(self, m: int, c: int = 96) -> None:
        super().__init__()
        self.mix = nn.Sequential(_LatentMix(m, m), _LatentMix(m, m))
        self.block = nn.Conv2d(m, 768, 1)
        self.refine = nn.Sequential(
            _conv3(48, c), nn.LeakyReLU(0.1), _PixelResBlock(c), _PixelResBlock(c), _zero_last(_conv3(c, 48))
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = F.pixel_shuffle(self.block(self.mix(y)), 16)
        return x + F.pixel_shuffle(self.refine(F.pixel_unshuffle(x, 4)), 4)


@torch.no_grad()
def init_block_transforms(g_a: BlockAnalysis, g_s: BlockSynthesis, patches: torch.Tensor, scale: float) -> None:
    """Set the block transforms to the KLT of patches (N, 3, 16, 16), keeping the strongest
    components; scale sets the quantisation step (1/scale in pixel units at gain 1)."""
    u = F.pixel_unshuffle(patches, 16).flatten(1).double()  # (N, 768) in the network's channel order
    cov = u.T @ u / u.shape[0]
    eigval, eigvec = torch.linalg.eigh(cov)
    basis = eigvec[:, torch.argsort(eigval, descending=True)[: g_a.block.out_channels]].float()  # (768, m)
    g_a.block.weight.copy_(scale * basis.T[:, :, None, None])
    g_a.block.bias.zero_()
    g_s.block.weight.copy_(basis[:, :, None, None] / scale)
    g_s.block.bias.zero_()
