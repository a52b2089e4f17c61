"""Integers that need no context model, range-coded with uniform models (constriction): signed
values zigzag-mapped, unbounded numbers in Exp-Golomb form, and raw bits.

Shared by the lossy coder (low band, escapes) and the lossless one (low band, mantissa bits).
"""

from __future__ import annotations

import constriction
import numpy as np

MAX_BITS = 40
CHUNK = 16


def zigzag(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.int64)
    return np.where(d >= 0, 2 * d, -2 * d - 1).astype(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def encode_numbers(enc, u: np.ndarray) -> None:
    """Non-negative integers as (bit length, bits below the leading one), Exp-Golomb style."""
    u = u.astype(np.uint64) + np.uint64(1)
    nbits = np.array([int(v).bit_length() for v in u], dtype=np.int32)
    if nbits.size == 0:
        return
    if nbits.max() > MAX_BITS:
        raise ValueError("coefficient too large to code")
    enc.encode(nbits - 1, constriction.stream.model.Uniform(MAX_BITS))
    code_bits(enc, u, nbits - 1, decode=False)


def decode_numbers(dec, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    nlow = dec.decode(constriction.stream.model.Uniform(MAX_BITS), n).astype(np.int32)
    u = np.left_shift(np.uint64(1), nlow.astype(np.uint64))
    return (code_bits(dec, u, nlow, decode=True) - np.uint64(1)).astype(np.int64)


def code_bits(coder, u: np.ndarray, nlow: np.ndarray, decode: bool) -> np.ndarray:
    """The low nlow[i] bits of u[i], in chunks of at most 16 bits: for each chunk position from
    the lowest, one uniform symbol for every value that has bits there, in order."""
    if nlow.size and 0 < nlow.min() and nlow.max() <= CHUNK:
        # the common case, one chunk each: the same symbols as the loop below, fewer steps
        sizes = np.left_shift(1, nlow, dtype=np.int32)
        model = constriction.stream.model.Uniform()
        if decode:
            u |= coder.decode(model, sizes).astype(np.uint64)
        else:
            coder.encode((u & (sizes - 1).astype(np.uint64)).astype(np.int32), model, sizes)
        return u
    for start in range(0, MAX_BITS, CHUNK):
        width = np.clip(nlow - start, 0, CHUNK)
        sel = np.nonzero(width > 0)[0]
        if sel.size == 0:
            break
        sizes = (1 << width[sel]).astype(np.int32)
        model = constriction.stream.model.Uniform()
        if decode:
            chunk = coder.decode(model, sizes).astype(np.uint64)
            u[sel] |= chunk << np.uint64(start)
        else:
            chunk = (u[sel] >> np.uint64(start)) & ((np.uint64(1) << width[sel].astype(np.uint64)) - 1)
            coder.encode(chunk.astype(np.int32), model, sizes)
    return u
