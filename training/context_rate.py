"""A differentiable rate that matches the context coder, for training the transform.

A Laplacian per band sees only how large a band's coefficients are; the coder (aecompress.entropy)
sees far less than that, because it codes each magnitude with the table row its context picks
(parent, siblings, luma, neighbours). A transform trained against the Laplacian learned to shrink
magnitudes in ways the contexts had already paid for and lost 2.8% through the real coder
(results/lifting-run1.val.jsonl). Here each detail coefficient is charged what the coder would
charge it:

1. the row: the image's coefficients are quantised as the runtime does, and entropy.analyse gives
   every position's context features, hence its activity, bucket and so table row (NumPy, no
   gradient; the row is a piecewise-constant function of the coefficients, as in the coder);
2. the bits: that row's code length, linearly interpolated between the integer magnitudes around
   the (noisy) continuous magnitude, so that the gradient is the code-length slope of the row,
   plus an escape's Exp-Golomb length beyond 15 and a sign bit for nonzero magnitudes.

The interpolation is centred on the dead-zone quantiser's bins (magnitude m covers m - 0.3 to
m + 0.7). The low band is not charged (the coder writes it in Exp-Golomb form, a few hundred
values for a whole image).
"""

from __future__ import annotations

import numpy as np
import torch

from aecompress import entropy, quantise
from aecompress.bands import assign_pass
from aecompress.entropy import BUCKETS, ESCAPE, PASSES, ContextTables

BIN_CENTRE = 0.5 - (1 - quantise.ROUND_UP)  # magnitude m's bin is centred at m + 0.2


def code_lengths(tables: ContextTables, level: int) -> np.ndarray:
    """(CLASSES * PASSES * BUCKETS, SYMBOLS) float32: every table row's code lengths in bits at a
    level (row index (class * PASSES + pass) * BUCKETS + bucket)."""
    c = tables.counts[level].astype(np.float64)
    bits = -np.log2(c / c.sum(axis=-1, keepdims=True))
    return bits.reshape(-1, bits.shape[-1]).astype(np.float32)


def row_maps(ints: list, levels: int, tables: ContextTables, level: int) -> list:
    """Per channel, [None, (HL, LH, HH) per level coarsest first] int32 maps: the table row that
    codes each position of the integer bands ints (quantise.quantise_bands' layout)."""
    maps = [[None] + [[None, None, None] for _ in range(levels)] for _ in range(3)]
    found = entropy.analyse(ints, levels)
    for k, o, c in entropy.band_order(levels):
        shape = ints[c][k][o].shape
        m = maps[c][k][o] = np.zeros(shape, np.int32)
        if m.size == 0:
            continue
        for p in range(PASSES):
            cls, p_found, feats, _, _ = next(found)
            assert p_found == p
            act = entropy.activity(tables.weights[cls, p], feats[:-1], feats[-1] if p else None)
            bucket = np.searchsorted(tables.thresholds[level, cls, p], act, side="right")
            assign_pass(m, p, (cls * PASSES + p) * BUCKETS + bucket)
    return [[None] + [tuple(t) for t in ch[1:]] for ch in maps]


def band_bits(y: torch.Tensor, rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Total bits of the scaled coefficients y (any shape, in steps, noisy for training) whose
    table rows are rows (same shape, long), under lengths (code_lengths as a tensor)."""
    u = (y.abs() - BIN_CENTRE).clamp_min(0)
    inside = u.clamp_max(ESCAPE - 1e-4)
    lo = inside.detach().floor().long()
    frac = inside - lo
    table = lengths[rows]  # (..., SYMBOLS)
    at_lo = table.gather(-1, lo.unsqueeze(-1)).squeeze(-1)
    at_hi = table.gather(-1, (lo + 1).unsqueeze(-1)).squeeze(-1)
    bits = at_lo + frac * (at_hi - at_lo)
    # beyond the escape: its Exp-Golomb code, about 2 log2(n + 1) + 1 bits for the excess n
    excess = (u - ESCAPE).clamp_min(0)
    bits = bits + torch.where(excess > 0, 2 * torch.log2(excess + 1) + 1, torch.zeros_like(excess))
    return (bits + u.clamp_max(1)).sum()  # a sign bit once the magnitude is nonzero


def image_bits(scaled: list, maps: list, lengths: torch.Tensor) -> torch.Tensor:
    """Bits of one image's detail bands: scaled and maps per channel in wavelet.forward's layout
    (scaled as tensors of any leading shape matching the maps)."""
    total = lengths.new_zeros(())
    for ch, mp in zip(scaled, maps, strict=True):
        for t, tm in zip(ch[1:], mp[1:], strict=True):
            for b, m in zip(t, tm, strict=True):
                if m.size:
                    total = total + band_bits(b.reshape(m.shape), torch.from_numpy(m).long(), lengths)
    return total
