"""The learned lifting transform: CDF 9/7 lifting whose steps carry learned corrections.

Each level of aecompress.wavelet's transform is two passes of four lifting steps (rows, then
columns): predict d += a (s[i] + s[i+1]), update s += b (d[i-1] + d[i]), predict, update, then
scaling. Here the last predict and the last update of every pass also add a small convolutional
network's output, computed from the other half only:

    d += GAMMA (s[i] + s[i+1]) + P(s[i], s[i+1])      s += DELTA (d[i-1] + d[i]) + U(d[i-1], d[i])

so the inverse subtracts exactly what the forward added (from the same, already known, half) and
reconstruction is perfect whatever P and U are (iWave; Li and Taubman's learned lifting). The
networks' last layers start at zero: an untrained LearnedLifting is the shipped transform, which
the tests check against the NumPy reference. Corrections are shared by all levels and channels
(images look alike across scales), one P and one U for rows and one each for columns.

This is the training side of issue 16; the runtime does not use it yet (see the closing note).
Even sizes only at every level (training crops are multiples of 2^levels).
"""

from __future__ import annotations

import torch
from torch import nn

from aecompress.wavelet import ALPHA, BETA, DELTA, GAMMA, ICT, ICT_INV, KAPPA

SCALE = 64.0  # coefficients are O(100): the networks see and make values of order one


class Correction(nn.Module):
    """Two aligned neighbours of the other half (2 channels) -> a correction for this half."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 1, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([a, b], dim=1) / SCALE) * SCALE


def _next(s: torch.Tensor) -> torch.Tensor:
    """s[i + 1] along the last axis, the last mirrored onto itself (even length)."""
    return torch.cat([s[..., 1:], s[..., -1:]], dim=-1)


def _prev(d: torch.Tensor) -> torch.Tensor:
    """d[i - 1] along the last axis, d[-1] mirrored to d[0]."""
    return torch.cat([d[..., :1], d[..., :-1]], dim=-1)


class LearnedLifting(nn.Module):
    """Forward and inverse of one channel's multi-level transform, (B, 1, H, W) float."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.predict = nn.ModuleList([Correction(width), Correction(width)])  # rows, columns
        self.update = nn.ModuleList([Correction(width), Correction(width)])

    def _pass(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, d = x[..., 0::2], x[..., 1::2]
        d = d + ALPHA * (s + _next(s))
        s = s + BETA * (_prev(d) + d)
        nxt = _next(s)
        d = d + GAMMA * (s + nxt) + self.predict[k](s, nxt)
        prv = _prev(d)
        s = s + DELTA * (prv + d) + self.update[k](prv, d)
        return s * (1 / KAPPA), d * (KAPPA / 2)

    def _unpass(self, s: torch.Tensor, d: torch.Tensor, k: int) -> torch.Tensor:
        s, d = s * KAPPA, d * (2 / KAPPA)
        prv = _prev(d)
        s = s - DELTA * (prv + d) - self.update[k](prv, d)
        nxt = _next(s)
        d = d - GAMMA * (s + nxt) - self.predict[k](s, nxt)
        s = s - BETA * (_prev(d) + d)
        d = d - ALPHA * (s + _next(s))
        return torch.stack([s, d], dim=-1).flatten(-2)

    def forward(self, x: torch.Tensor, levels: int) -> list:
        """-> [LL, (HL, LH, HH) coarsest .. finest], as aecompress.wavelet.forward."""
        details = []
        low = x
        for _ in range(levels):
            lo, hi = self._pass(low, 0)  # rows: horizontal low / high
            ll, lh = (t.transpose(-1, -2) for t in self._pass(lo.transpose(-1, -2), 1))
            hl, hh = (t.transpose(-1, -2) for t in self._pass(hi.transpose(-1, -2), 1))
            details.append((hl, lh, hh))
            low = ll
        return [low] + details[::-1]

    def inverse(self, bands: list) -> torch.Tensor:
        low = bands[0]
        for hl, lh, hh in bands[1:]:
            lo = self._unpass(low.transpose(-1, -2), lh.transpose(-1, -2), 1).transpose(-1, -2)
            hi = self._unpass(hl.transpose(-1, -2), hh.transpose(-1, -2), 1).transpose(-1, -2)
            low = self._unpass(lo, hi, 0)
        return low


def rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) on 0..255 -> Y Cb Cr, Y centred on 0 (aecompress.wavelet.rgb_to_ycc)."""
    m = torch.tensor(ICT, dtype=rgb.dtype, device=rgb.device)
    y = torch.einsum("ij,bjhw->bihw", m, rgb)
    return y - torch.tensor([128.0, 0.0, 0.0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)


def ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(ICT_INV, dtype=ycc.dtype, device=ycc.device)
    y = ycc + torch.tensor([128.0, 0.0, 0.0], dtype=ycc.dtype, device=ycc.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, y)
