"""Wavelet coefficients <-> integers: a dead-zone scalar quantiser per subband.

Each band's step is the level's base step divided by the band's synthesis gain (so every band
costs the same pixel MSE per unit of error) and, for chroma, multiplied by CHROMA_STEP. A value
rounds up to magnitude k only from k - 1 + ROUND_UP: the wide zero bin makes small, costly
coefficients free. Reconstruction sits RECON_OFFSET of a step beyond the integer, near the
centroid of a bin under the peaked distributions of wavelet coefficients.

Steps are floats, but they only scale values: nothing here chooses a probability, so a decoder that
computes a step a last bit differently still decodes the same integers.
"""

from __future__ import annotations

import numpy as np

from aecompress import wavelet

ROUND_UP = 0.7
RECON_OFFSET = 0.15
CHROMA_STEP = 1.0
# Far beyond any coefficient of an 8-bit image at the finest step, so that a pathological input
# cannot overflow the escape code.
LIMIT = 1 << 24


# A model may scale the steps per channel and band level (its tables hold the factors): columns
# are the detail levels from the finest, coarser levels sharing the last, then the low band.
SCALE_LEVELS = 6
SCALE_SHAPE = (3, SCALE_LEVELS + 1)


def band_steps(base: float, levels: int, scale: np.ndarray | None = None) -> list:
    """Per channel (Y, Cb, Cr), steps in the layout of wavelet.forward's bands; scale (SCALE_SHAPE)
    multiplies them, e.g. coarser steps where a metric other than MSE cares less."""
    gains = wavelet.synthesis_gains(levels)
    out = []
    for c in range(3):
        f = base * (CHROMA_STEP if c else 1.0)
        m = np.ones(SCALE_SHAPE[1]) if scale is None else np.asarray(scale, dtype=np.float64)[c]
        detail = [
            tuple(f * float(m[min(levels - i, SCALE_LEVELS) - 1]) / g for g in t) for i, t in enumerate(gains[1:])
        ]
        out.append([f * float(m[SCALE_LEVELS]) / gains[0]] + detail)
    return out


def quantise_scaled(x: np.ndarray, round_up: float = ROUND_UP) -> np.ndarray:
    """quantise() of values already divided by their step (the same integers)."""
    q = np.minimum(np.floor(np.abs(x) + np.float32(1 - round_up)), LIMIT).astype(np.int32)
    return np.where(x < 0, -q, q)


def quantise(x: np.ndarray, step: float, round_up: float = ROUND_UP) -> np.ndarray:
    a = np.abs(x) * np.float32(1 / step) + np.float32(1 - round_up)
    q = np.minimum(np.floor(a), LIMIT).astype(np.int32)
    return np.where(x < 0, -q, q)


def dequantise(q: np.ndarray, step: float, offset: float = RECON_OFFSET) -> np.ndarray:
    mag = np.abs(q).astype(np.float32)
    v = np.where(q != 0, (mag + np.float32(offset)) * np.float32(step), np.float32(0))
    return np.where(q < 0, -v, v).astype(np.float32)


def quantise_bands(bands: list, steps: list) -> list:
    # The low band is dense and smooth: plain rounding, and centred reconstruction below.
    return [quantise(bands[0], steps[0], 0.5)] + [
        tuple(quantise(b, s) for b, s in zip(t, st, strict=True)) for t, st in zip(bands[1:], steps[1:], strict=True)
    ]


def scale_bands(bands: list, steps: list, in_place: bool = False) -> list:
    """Detail coefficients in units of their band's step (what the encoder's choices weigh), as
    lists, which the encoder empties as it codes; in_place reuses the bands' own arrays."""
    out: list = [None]
    for t, st in zip(bands[1:], steps[1:], strict=True):
        if in_place:
            for b, s in zip(t, st, strict=True):
                b *= np.float32(1 / s)
            out.append(list(t))
        else:
            out.append([b * np.float32(1 / s) for b, s in zip(t, st, strict=True)])
    return out


def dequantise_bands(q: list, steps: list, consume: bool = False) -> list:
    """Integers -> coefficients; consume lets go of each level's integers as it goes (q must be
    a list), so that the decoder never holds a channel twice."""
    out = [dequantise(q[0], steps[0], 0.0)]
    for k in range(1, len(q)):
        out.append(tuple(dequantise(b, s) for b, s in zip(q[k], steps[k], strict=True)))
        if consume:
            q[k] = None
    return out
