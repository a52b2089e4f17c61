"""The codec's integer representation of one image, as the library hands it out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Latents:
    """The codec's compact representation of one image: integer wavelet subbands.

    bands[c] for c in Y, Cb, Cr: [LL, (HL, LH, HH) for each level, coarsest first], int32 arrays.
    With the model id and quality they are exactly what a .lat file stores (decode_latents
    inverts them); steps[c] are the quantiser steps, so bands * steps approximates the wavelet
    coefficients of the image's colour channels (see docs/format.md).
    """

    bands: list
    width: int
    height: int
    mode: str
    quality: int
    model: str
    steps: list

    def flat(self) -> np.ndarray:
        """All coefficients of all bands as one int32 vector (a feature vector for ML pipelines)."""
        parts = []
        for ch in self.bands:
            parts.append(ch[0].ravel())
            parts += [b.ravel() for t in ch[1:] for b in t]
        return np.concatenate(parts).astype(np.int32)
