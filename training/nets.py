"""The networks: the blind denoiser and the codec's decoder-side post-filter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _ResBlock(nn.Module):
    def __init__(self, c: int, zero: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))
        if zero:
            # an identity at first: a deeper network starts as exactly the one it grew from
            nn.init.zeros_(self.body[2].weight)
            nn.init.zeros_(self.body[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _stage(c: int, n: int, zero_from: int) -> nn.Sequential:
    return nn.Sequential(*[_ResBlock(c, zero=i >= zero_from) for i in range(n)])


class Denoiser(nn.Module):
    """A small residual U-Net on a pixel-unshuffled input, steered by a noise-level map.

    Input: the noisy RGB image in [0, 1] and sigma/255 as a fourth constant channel (the FFDNet
    idea: one network for every level, and a user can turn it). The first pixel-unshuffle puts
    every convolution at a quarter of the pixels or fewer, which is what makes it affordable on a
    laptop CPU. Height and width must be multiples of 8 (the runtime pads).

    blocks are the residual blocks of the encoder's two stages and the middle, dec_blocks those
    of the decoder's two stages. Blocks beyond unet48-v1's (2, 2, 2) and (1, 1) start as
    identities, so a deeper network is first exactly the shipped one (`load_grown`). A block in
    the middle costs 10.4k multiply-adds a pixel and widens the receptive field the most, which
    spatially correlated noise needs.
    """

    BASE_BLOCKS = (2, 2, 2)
    BASE_DEC = (1, 1)

    def __init__(
        self,
        widths: tuple[int, int, int] = (48, 96, 192),
        blocks: tuple[int, int, int] = (2, 2, 2),
        dec_blocks: tuple[int, int] = (1, 1),
    ):
        super().__init__()
        c1, c2, c3 = widths
        b0, d0 = self.BASE_BLOCKS, self.BASE_DEC
        self.head = nn.Conv2d(16, c1, 3, padding=1)
        self.enc1 = _stage(c1, blocks[0], b0[0])
        self.down1 = nn.Conv2d(c1, c2, 2, stride=2)
        self.enc2 = _stage(c2, blocks[1], b0[1])
        self.down2 = nn.Conv2d(c2, c3, 2, stride=2)
        self.mid = _stage(c3, blocks[2], b0[2])
        self.up2 = nn.ConvTranspose2d(c3, c2, 2, stride=2)
        self.dec2 = _stage(c2, dec_blocks[0], d0[0])
        self.up1 = nn.ConvTranspose2d(c2, c1, 2, stride=2)
        self.dec1 = _stage(c1, dec_blocks[1], d0[1])
        self.tail = nn.Conv2d(c1, 12, 3, padding=1)

    def load_grown(self, state: dict[str, torch.Tensor]) -> None:
        """Load weights of a network with the same widths and fewer blocks (unet48-v1's
        single decoder blocks were stored without an index); the extra blocks stay identities."""
        state = {_indexed(k): v.float() for k, v in state.items()}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not _is_extra_block(k, self) for k in missing):
            raise ValueError(f"weights do not fit: missing {missing}, unexpected {unexpected}")

    def forward(self, noisy: torch.Tensor, sigma_map: torch.Tensor) -> torch.Tensor:
        x = F.pixel_unshuffle(torch.cat([noisy, sigma_map], dim=1), 2)
        e1 = self.enc1(self.head(x))
        e2 = self.enc2(self.down1(e1))
        m = self.mid(self.down2(e2))
        d2 = self.dec2(self.up2(m) + e2)
        d1 = self.dec1(self.up1(d2) + e1)
        return noisy + F.pixel_shuffle(self.tail(d1), 2)


def _indexed(key: str) -> str:
    for stage in ("dec1", "dec2"):
        if key.startswith(stage + ".body."):
            return stage + ".0." + key[len(stage) + 1 :]
    return key


def _is_extra_block(key: str, net: Denoiser) -> bool:
    stage, index = key.split(".")[:2]
    base = dict(zip(("enc1", "enc2", "mid", "dec2", "dec1"), (*net.BASE_BLOCKS, *net.BASE_DEC), strict=True))
    return stage in base and index.isdigit() and int(index) >= base[stage]


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    nn.init.normal_(conv.weight, std=(cin * 9) ** -0.5)
    nn.init.zeros_(conv.bias)
    return conv


def _zero_last(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class _PixelResBlock(nn.Module):
    def __init__(self, c: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or c
        self.body = nn.Sequential(_conv3(c, mid), nn.LeakyReLU(0.1), _conv3(mid, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PostFilter(nn.Module):
    """The codec's decoder-side network: wavelet reconstruction (RGB, 0..1) and the level's base
    step -> a correction of ringing and blur, added to the input.

    It works at half resolution on 2x2 pixel blocks (pixel unshuffle), where a 3x3 convolution
    sees 6x6 pixels for a quarter of the cost, and is told the step as one more input plane, so
    one network serves every level. The last convolution starts at zero: an untrained filter is
    the identity, and training can only start from the plain wavelet decoder.
    """

    def __init__(self, width: int = 48, blocks: int = 2, mid: int | None = None) -> None:
        """mid: the channels inside each residual block (default: width); the blocks' two
        convolutions are most of the cost, and narrowing only their inside keeps the path that
        carries the image at full width."""
        super().__init__()
        self.head = _conv3(13, width)
        self.blocks = nn.ModuleList(_PixelResBlock(width, mid) for _ in range(blocks))
        self.tail = _zero_last(_conv3(width, 12))

    def forward(self, x: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """x (B, 3, H, W) with H and W even; step (B,) base steps on the 0..255 scale."""
        h = F.pixel_unshuffle(x, 2)
        cond = (torch.log2(step) / 8).view(-1, 1, 1, 1).expand(-1, 1, h.shape[2], h.shape[3])
        h = F.leaky_relu(self.head(torch.cat([h, cond.to(h.dtype)], 1)), 0.1)
        for b in self.blocks:
            h = b(h)
        return x + F.pixel_shuffle(self.tail(h), 2)
