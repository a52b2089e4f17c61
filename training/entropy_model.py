"""The learned factorized prior (Ballé et al. 2018, appendix 6.1) and its integer CDF tables.

One density per latent channel and per quality level: the levels share transforms but their
latents are scaled by different gains, so each level gets its own distributions.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_FLOOR = 1e-9


class FactorizedPrior(nn.Module):
    def __init__(self, levels: int, channels: int, filters: tuple[int, ...] = (3, 3, 3)) -> None:
        super().__init__()
        self.levels = levels
        self.channels = channels
        dims = (1, *filters, 1)
        scale = 10.0 ** (1 / len(filters))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        k = levels * channels
        for i in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[i + 1])))
            self.matrices.append(nn.Parameter(torch.full((k, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(k, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(k, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """x: (B, C, N) values; level: (B,) ints. Returns the CDF's logits, same shape as x."""
        idx = level[:, None] * self.channels + torch.arange(self.channels, device=x.device)
        h = x.unsqueeze(2)  # (B, C, 1, N)
        for i, m in enumerate(self.matrices):
            h = torch.matmul(F.softplus(m[idx]), h) + self.biases[i][idx]
            if i < len(self.factors):
                h = h + torch.tanh(self.factors[i][idx]) * torch.tanh(h)
        return h.squeeze(2)

    def likelihood(self, y: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each value of y (B, C, H, W)."""
        b, c, hh, ww = y.shape
        v = y.reshape(b, c, hh * ww)
        lower = self.logits_cdf(v - 0.5, level)
        upper = self.logits_cdf(v + 0.5, level)
        # Evaluate in the tail where the sigmoids are not both near 1, for precision.
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.clamp_min(LIKELIHOOD_FLOOR).reshape(b, c, hh, ww)

    @torch.no_grad()
    def cdf_tables(self, precision: int = 16, tail: float = 1e-9, max_half: int = 2048):
        """Integer CDF tables for every (level, channel), for the runtime's entropy coder.

        Returns (cdf, offsets, sizes): cdf is int32 (levels*channels, max_size + 2) whose row k
        holds a non-decreasing CDF from 0 to 2**precision over sizes[k] symbols followed by one
        escape symbol; symbol j stands for the value offsets[k] + j. Every symbol gets at least
        one count so that any value, however unlikely, stays codable.
        """
        k = self.levels * self.channels
        grid = torch.arange(-max_half, max_half + 1, dtype=torch.float32)
        rows = []
        lo_all, hi_all = [], []
        for lvl in range(self.levels):
            level = torch.full((1,), lvl, dtype=torch.long)
            v = grid.expand(1, self.channels, -1)
            lower = torch.sigmoid(self.logits_cdf(v - 0.5, level))[0].double()
            upper = torch.sigmoid(self.logits_cdf(v + 0.5, level))[0].double()
            for c in range(self.channels):
                pmf = (upper[c] - lower[c]).clamp_min(0).numpy()
                # Values whose interval still reaches into the central 1 - 2*tail of the mass;
                # anything beyond goes through the escape symbol.
                lo = int(np.argmax(upper[c].numpy() > tail))
                hi = int(len(grid) - 1 - np.argmax((lower[c].numpy() < 1 - tail)[::-1]))
                hi = max(hi, lo)
                rows.append(pmf[lo : hi + 1])
                lo_all.append(int(grid[lo]))
                hi_all.append(int(grid[hi]))
        sizes = np.array([len(r) for r in rows], dtype=np.int32)
        width = int(sizes.max()) + 2
        cdf = np.zeros((k, width), dtype=np.int32)
        for i, pmf in enumerate(rows):
            cdf[i, : sizes[i] + 2] = pmf_to_cdf(pmf, precision)
            cdf[i, sizes[i] + 2 :] = 1 << precision
        return cdf, np.array(lo_all, dtype=np.int32), sizes


def pmf_to_cdf(pmf: np.ndarray, precision: int) -> np.ndarray:
    """Quantise a PMF plus an escape symbol (the leftover mass) to an integer CDF.

    Each symbol gets at least one count; the counts are then fixed up so that they sum to exactly
    2**precision, taking from the largest symbols, which costs the least rate.
    """
    total = 1 << precision
    probs = np.append(pmf, max(0.0, 1.0 - float(pmf.sum())))
    counts = np.maximum(1, np.round(probs * total)).astype(np.int64)
    while counts.sum() != total:
        diff = total - int(counts.sum())
        order = np.argsort(-counts)
        if diff > 0:
            counts[order[0]] += diff
        else:
            for j in order:
                take = min(counts[j] - 1, -diff)
                counts[j] -= take
                diff += take
                if diff == 0:
                    break
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
