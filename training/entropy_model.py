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
    """Quantise a PMF plus an escape symbol (the leftover mass) to an integer CDF."""
    probs = np.append(pmf, max(0.0, 1.0 - float(pmf.sum())))
    return np.concatenate([[0], np.cumsum(probs_to_counts(probs, precision))]).astype(np.int32)


def probs_to_counts(probs: np.ndarray, precision: int) -> np.ndarray:
    """Integer counts summing to exactly 2**precision, each at least 1 so that every symbol stays
    codable; the fix-up takes from the largest symbols, which costs the least rate."""
    total = 1 << precision
    counts = np.maximum(1, np.round(probs / probs.sum() * total)).astype(np.int64)
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
    return counts


def factorized_tables(prior: FactorizedPrior, precision: int = 16) -> dict[str, np.ndarray]:
    """The prior alone in the runtime's table format: one table per (level, channel), no
    contexts, no prediction; what the context tables are measured against."""
    cdf, offsets, sizes = prior.cdf_tables(precision)
    n = prior.levels * prior.channels
    counts = []
    for k in range(n):
        row = np.diff(cdf[k, : sizes[k] + 2])
        counts += [row, row]  # the first pass's table and the second pass's
    lengths = 2 * (sizes.astype(np.int64) + 1)
    return {
        "counts": np.concatenate(counts).astype(np.uint16),
        "starts": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "offsets": offsets,
        "sizes": sizes,
        "offsets2": offsets,
        "sizes2": sizes,
        "predicted": np.zeros(n, dtype=bool),
        "t_lower": np.zeros((n, 0), dtype=np.int64),
        "t_neigh": np.zeros((n, 0), dtype=np.int64),
        "weights": np.zeros((n, prior.channels), dtype=np.int64),
        "precision": np.int32(precision),
        "shape": np.array([prior.levels, prior.channels], dtype=np.int32),
    }


def _thresholds(values: np.ndarray, k: int) -> np.ndarray:
    """k - 1 integer cut points at the quantiles of values (repeats pushed to the top, unused)."""
    cuts = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)[1:-1], method="lower")) if values.size else []
    out = np.full(k - 1, np.iinfo(np.int64).max, dtype=np.int64)
    out[: len(cuts)] = cuts
    return out


def _entropy_bits(v: np.ndarray) -> float:
    _, n = np.unique(v, return_counts=True)
    p = n / n.sum()
    return float(-(n * np.log2(p)).sum())


def _activity_weights(mag: np.ndarray, window: int, scale: int = 64) -> np.ndarray:
    """Per channel, non-negative integer weights over the `window` channels before it whose
    weighted sum of magnitudes best predicts its own magnitude (least squares, normal equations)."""
    c_all = mag.shape[0]
    x = mag.astype(np.float64)
    gram = x @ x.T
    out = np.zeros((c_all, c_all), dtype=np.int64)
    for c in range(1, c_all):
        lo = max(0, c - window)
        a = gram[lo:c, lo:c] + 1e-6 * (np.trace(gram[lo:c, lo:c]) / (c - lo) + 1) * np.eye(c - lo)
        w = np.linalg.solve(a, gram[lo:c, c])
        out[c, lo:c] = np.rint(np.clip(w, 0, None) * scale)
    return out


def fit_context_tables(
    prior: FactorizedPrior,
    latents: list[list[np.ndarray]],
    precision: int = 16,
    window: int = 64,
    k1: int = 8,
    k2: int = 4,
    smoothing: float = 20.0,
    predict_gain: float = 0.95,
) -> dict[str, np.ndarray]:
    """The runtime's context tables (see aecompress.entropy), fitted to quantised training latents.

    latents[level] holds (channels, H, W) integer arrays. First-pass alphabets come from the
    learned prior. A channel's second pass codes residuals from the neighbour mean where, on these
    latents, that takes under predict_gain of the bits the values take. Each context bucket's
    distribution is its histogram pulled towards a base distribution (the prior, or the pooled
    residual histogram) by `smoothing` pseudo-samples, so that rare buckets and rare values keep
    sensible probabilities.
    """
    from aecompress import entropy

    cdf, offsets, sizes = prior.cdf_tables(precision)
    offsets, sizes = offsets.astype(np.int64), sizes.astype(np.int64)
    levels, channels = prior.levels, prior.channels
    n = levels * channels
    offsets2, sizes2, predicted = offsets.copy(), sizes.copy(), np.zeros(n, dtype=bool)
    t_lower = np.zeros((n, k1 - 1), dtype=np.int64)
    weights = np.zeros((n, channels), dtype=np.int64)
    t_neigh = np.zeros((n, k2 - 1), dtype=np.int64)
    counts = []
    for lvl in range(levels):
        r = slice(lvl * channels, (lvl + 1) * channels)
        images = [(q.reshape(q.shape[0], -1).astype(np.int64), q.shape[1], q.shape[2]) for q in latents[lvl]]
        # Which channels to predict, and their residual alphabets.
        everything = (offsets[r], sizes[r], offsets[r], sizes[r], np.ones(channels, dtype=bool))
        values, residuals = [], []
        for v, h, w in images:
            a = entropy.analyse(v, everything, None, h, w)
            values.append(v[:, a["second"]])
            residuals.append((v - a["pred"])[:, a["second"]])
        values, residuals = np.concatenate(values, axis=1), np.concatenate(residuals, axis=1)
        for c in range(channels):
            k = lvl * channels + c
            if residuals.shape[1] and _entropy_bits(residuals[c]) < predict_gain * _entropy_bits(values[c]):
                lo, hi = (int(x) for x in np.quantile(residuals[c], [1e-4, 1 - 1e-4], method="nearest"))
                offsets2[k], sizes2[k], predicted[k] = min(lo, 0), max(hi, 0) - min(lo, 0) + 1, True
        lv = (offsets[r], sizes[r], offsets2[r], sizes2[r], predicted[r])
        feats = [entropy.analyse(v, lv, None, h, w) for v, h, w in images]
        weights[r] = _activity_weights(np.concatenate([f["mag"] for f in feats], axis=1), window)
        for f in feats:
            f["lower"] = entropy.lower_activity(weights[r], f["mag"])
        w1, w2 = int(sizes[r].max()) + 1, int(sizes2[r].max()) + 1
        hist1 = np.zeros((channels, k1 * w1), dtype=np.int64)
        hist2 = np.zeros((channels, k1 * k2 * w2), dtype=np.int64)
        for c in range(channels):
            k = lvl * channels + c
            t_lower[k] = _thresholds(np.concatenate([f["lower"][c] for f in feats]), k1)
            t_neigh[k] = _thresholds(np.concatenate([f["activity"][c, f["second"]] for f in feats]), k2)
            for f in feats:
                first, second = ~f["second"], f["second"]
                b = entropy.buckets(t_lower[k], t_neigh[k], f["lower"][c, first], None)
                hist1[c] += np.bincount(b * w1 + f["sym"][c, first], minlength=k1 * w1)
                b = entropy.buckets(t_lower[k], t_neigh[k], f["lower"][c, second], f["activity"][c, second])
                hist2[c] += np.bincount(b * w2 + f["sym"][c, second], minlength=k1 * k2 * w2)
        hist1, hist2 = hist1.reshape(channels, k1, w1), hist2.reshape(channels, k1 * k2, w2)
        for c in range(channels):
            k = lvl * channels + c
            prior_pmf = np.diff(cdf[k, : sizes[k] + 2]).astype(np.float64)
            base1 = smoothing * prior_pmf / prior_pmf.sum()
            counts.extend(probs_to_counts(hist1[c, b, : sizes[k] + 1] + base1, precision) for b in range(k1))
            if predicted[k]:
                pooled = hist2[c, :, : sizes2[k] + 1].sum(axis=0) + 0.5
                base2 = smoothing * pooled / pooled.sum()
            else:
                base2 = base1
            counts.extend(probs_to_counts(hist2[c, b, : sizes2[k] + 1] + base2, precision) for b in range(k1 * k2))
    lengths = k1 * (sizes + 1) + k1 * k2 * (sizes2 + 1)
    return {
        "counts": np.concatenate(counts).astype(np.uint16),
        "starts": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "offsets": offsets.astype(np.int32),
        "sizes": sizes.astype(np.int32),
        "offsets2": offsets2.astype(np.int32),
        "sizes2": sizes2.astype(np.int32),
        "predicted": predicted,
        "t_lower": t_lower,
        "t_neigh": t_neigh,
        "weights": weights,
        "precision": np.int32(precision),
        "shape": np.array([levels, channels], dtype=np.int32),
    }
