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

Any size works, odd sides included, with the whole-sample symmetric extension of
aecompress.wavelet; one level (analyse / synthesise) is what the runtime's graphs run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
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


def _next(s: torch.Tensor, n: int) -> torch.Tensor:
    """s[i + 1] for i < n along the last axis (n: the high half's length), the last sample
    mirrored onto itself where s runs out (even lengths): JPEG 2000's whole-sample symmetry."""
    return torch.cat([s, s[..., -1:]], dim=-1)[..., 1 : n + 1]


def _around(d: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(d[i - 1], d[i]) for i < n along the last axis (n: the low half's length), d mirrored at
    both ends (d[-1] is d[0]; past the end, on odd lengths, the last d again)."""
    e = torch.cat([d[..., :1], d, d[..., -1:]], dim=-1)
    return e[..., :n], e[..., 1 : n + 1]


def _interleave(s: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Inverse of the split into s = x[0::2], d = x[1::2] along the last axis, any length: an
    odd length's missing last d is a zero column (s's own last sample times 0) cut off again."""
    ns, nd = s.shape[-1], d.shape[-1]
    d = torch.cat([d, s[..., nd:] * 0], dim=-1)
    return torch.stack([s, d], dim=-1).flatten(-2)[..., : ns + nd]


class LearnedLifting(nn.Module):
    """Forward and inverse of one channel's multi-level transform, (B, 1, H, W) float, any size
    with at least 2 samples a side at every level (aecompress.bands.levels_for gives that)."""

    def __init__(self, width: int = 8, skip: int = 0) -> None:
        """skip: the finest levels that stay plain CDF 9/7 (a correction costs the most there,
        at full resolution, and the runtime runs them in NumPy)."""
        super().__init__()
        self.skip = skip
        self.predict = nn.ModuleList([Correction(width), Correction(width)])  # rows, columns
        self.update = nn.ModuleList([Correction(width), Correction(width)])

    def _pass(self, x: torch.Tensor, k: int, learned: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        s, d = x[..., 0::2], x[..., 1::2]
        ns, nd = s.shape[-1], d.shape[-1]
        d = d + ALPHA * (s[..., :nd] + _next(s, nd))
        prv, cur = _around(d, ns)
        s = s + BETA * (prv + cur)
        here, nxt = s[..., :nd], _next(s, nd)
        d = d + GAMMA * (here + nxt)
        if learned:
            d = d + self.predict[k](here, nxt)
        prv, cur = _around(d, ns)
        s = s + DELTA * (prv + cur)
        if learned:
            s = s + self.update[k](prv, cur)
        return s * (1 / KAPPA), d * (KAPPA / 2)

    def _unpass(self, s: torch.Tensor, d: torch.Tensor, k: int, learned: bool = True) -> torch.Tensor:
        ns, nd = s.shape[-1], d.shape[-1]
        s, d = s * KAPPA, d * (2 / KAPPA)
        prv, cur = _around(d, ns)
        s = s - DELTA * (prv + cur)
        if learned:
            s = s - self.update[k](prv, cur)
        here, nxt = s[..., :nd], _next(s, nd)
        d = d - GAMMA * (here + nxt)
        if learned:
            d = d - self.predict[k](here, nxt)
        prv, cur = _around(d, ns)
        s = s - BETA * (prv + cur)
        d = d - ALPHA * (s[..., :nd] + _next(s, nd))
        return _interleave(s, d)

    def analyse(
        self, x: torch.Tensor, learned: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One level: x -> (LL, HL, LH, HH); learned=False is the plain CDF 9/7 level."""
        lo, hi = self._pass(x, 0, learned)  # rows: horizontal low / high
        ll, lh = (t.transpose(-1, -2) for t in self._pass(lo.transpose(-1, -2), 1, learned))
        hl, hh = (t.transpose(-1, -2) for t in self._pass(hi.transpose(-1, -2), 1, learned))
        return ll, hl, lh, hh

    def synthesise(
        self, ll: torch.Tensor, hl: torch.Tensor, lh: torch.Tensor, hh: torch.Tensor, learned: bool = True
    ) -> torch.Tensor:
        """Inverse of analyse."""
        lo = self._unpass(ll.transpose(-1, -2), lh.transpose(-1, -2), 1, learned).transpose(-1, -2)
        hi = self._unpass(hl.transpose(-1, -2), hh.transpose(-1, -2), 1, learned).transpose(-1, -2)
        return self._unpass(lo, hi, 0, learned)

    def forward(self, x: torch.Tensor, levels: int) -> list:
        """-> [LL, (HL, LH, HH) coarsest .. finest], as aecompress.wavelet.forward."""
        details = []
        low = x
        for i in range(levels):
            low, *detail = self.analyse(low, learned=i >= self.skip)
            details.append(tuple(detail))
        return [low] + details[::-1]

    def inverse(self, bands: list) -> torch.Tensor:
        low = bands[0]
        levels = len(bands) - 1
        for j, (hl, lh, hh) in enumerate(bands[1:]):
            low = self.synthesise(low, hl, lh, hh, learned=levels - 1 - j >= self.skip)
        return low


def load_lifting(path: Path) -> tuple[LearnedLifting, dict]:
    """A train_lifting checkpoint (or exported weights) -> (the model in eval mode, its state)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = LearnedLifting(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.eval(), state


class AsTransform:
    """A LearnedLifting where aecompress.transform.Transform is expected (NumPy in and out, float64
    inside), for fitting tables and making post-filter inputs with the learned wavelet."""

    def __init__(self, model: LearnedLifting) -> None:
        self.model = model.double().eval()

    @classmethod
    def load(cls, path: Path) -> AsTransform:
        return cls(load_lifting(path)[0])

    @torch.no_grad()
    def forward(self, x: np.ndarray, levels: int) -> list:
        bands = self.model(torch.from_numpy(np.asarray(x, np.float64))[None, None], levels)
        return [_plain(bands[0])] + [tuple(_plain(t) for t in tb) for tb in bands[1:]]

    @torch.no_grad()
    def inverse(self, bands: list, upto: int | None = None) -> np.ndarray:
        if upto is not None:
            raise ValueError("AsTransform inverts whole images only")
        t = [_tensor(bands[0])] + [tuple(_tensor(b) for b in tb) for tb in bands[1:]]
        return _plain(self.model.inverse(t))


def _plain(t: torch.Tensor) -> np.ndarray:
    return t[0, 0].numpy().astype(np.float32)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, np.float64))[None, None]


def rgb_to_ycc(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) on 0..255 -> Y Cb Cr, Y centred on 0 (aecompress.wavelet.rgb_to_ycc)."""
    m = torch.tensor(ICT, dtype=rgb.dtype, device=rgb.device)
    y = torch.einsum("ij,bjhw->bihw", m, rgb)
    return y - torch.tensor([128.0, 0.0, 0.0], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)


def ycc_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    m = torch.tensor(ICT_INV, dtype=ycc.dtype, device=ycc.device)
    y = ycc + torch.tensor([128.0, 0.0, 0.0], dtype=ycc.dtype, device=ycc.device).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, y)
