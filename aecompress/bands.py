"""Band geometry both transforms and coders share: how many levels an image gets and the bands'
shapes, the three coding passes of a band as strided views, a band cropped or padded to a
neighbour's shape, and positions grouped by context bucket."""

from __future__ import annotations

import numpy as np

# Levels stop when the low band would get shorter than this on its smaller side, or at MAX_LEVELS:
# a deep pyramid makes large smooth areas nearly free, which is where a single scale of blocks
# spends most.
MAX_LEVELS = 8
MIN_LOW = 2


def levels_for(h: int, w: int) -> int:
    """How many decomposition levels an image of h x w pixels gets (fixed by its size alone)."""
    n, side = 0, min(h, w)
    while n < MAX_LEVELS and -(-side // 2) >= MIN_LOW and side >= 2:
        side = -(-side // 2)
        n += 1
    return n


def band_shapes(h: int, w: int, levels: int) -> list:
    """Shapes in the order of `bands`: LL, then (HL, LH, HH) per level, coarsest first."""
    sizes = [(h, w)]
    for _ in range(levels):
        ph, pw = sizes[-1]
        sizes.append((-(-ph // 2), -(-pw // 2)))
    out: list = [sizes[-1]]
    for lv in range(levels, 0, -1):
        ph, pw = sizes[lv - 1]
        lo_h, lo_w = -(-ph // 2), -(-pw // 2)
        hi_h, hi_w = ph // 2, pw // 2
        out.append(((lo_h, hi_w), (hi_h, lo_w), (hi_h, hi_w)))
    return out


# The three passes as strided views of a band: (y even, x even); (y odd, x odd); then
# (y even, x odd) followed by (y odd, x even). Views, not boolean masks: several times faster.
VIEWS = (((0, 0),), ((1, 1),), ((0, 1), (1, 0)))


def split_pass(a: np.ndarray, p: int) -> np.ndarray:
    """Pass p's positions of a (h, w) band, as a 1-D array in coding order (a copy)."""
    parts = [a[y::2, x::2].ravel() for y, x in VIEWS[p]]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def assign_pass(a: np.ndarray, p: int, v: np.ndarray) -> None:
    """Inverse of split_pass: write pass p's values v into a."""
    start = 0
    for y, x in VIEWS[p]:
        view = a[y::2, x::2]
        view[...] = v[start : start + view.size].reshape(view.shape)
        start += view.size


def fit_shape(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """a cropped or zero-padded to shape (bands of one level differ by one where a side is odd);
    a itself when it already fits (callers only read it)."""
    if a.shape == shape:
        return a
    h, w = shape
    out = np.zeros(shape, dtype=a.dtype)
    hh, ww = min(h, a.shape[0]), min(w, a.shape[1])
    out[:hh, :ww] = a[:hh, :ww]
    return out


def groups(b: np.ndarray, n: int) -> list[tuple[int, np.ndarray | slice, int]]:
    """(bucket, its positions, how many) for each bucket present, in increasing order, positions
    in coding order within each. b: uint8."""
    if b.size and b.min() == b.max():  # a quiet band: one table for all
        return [(int(b[0]), slice(None), b.size)]
    order = np.argsort(b, kind="stable")  # a radix sort for 8-bit keys
    counts = np.bincount(b, minlength=n)
    out, start = [], 0
    for bucket in np.flatnonzero(counts):
        size = int(counts[bucket])
        out.append((int(bucket), order[start : start + size], size))
        start += size
    return out
