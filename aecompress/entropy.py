"""Integer latents <-> bytes, range-coded with a model's integer CDF tables (constriction).

Each (level, channel) has a table of symbol counts summing to 2**precision: symbol j stands for the
value offset + j, and the last symbol is an escape for values outside the table, whose exact value
follows at the end of the stream (Elias-gamma-like: bit length, then the bits, in uniform chunks).
The coder only ever sees integer counts (exact in float64), so decoding depends on no float that
a model computed: the same file decodes the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import constriction
import numpy as np

_MAX_BITS = 32
_CHUNK = 16


class EntropyError(ValueError):
    """The entropy-coded payload does not decode to a valid latent tensor."""


@dataclass
class EntropyTables:
    cdf: np.ndarray  # (levels * channels, width) int32
    offsets: np.ndarray  # (levels * channels,) int32
    sizes: np.ndarray  # (levels * channels,) int32, escape symbol not counted
    precision: int
    levels: int
    channels: int
    _models: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path) -> EntropyTables:
        with np.load(path) as z:
            cdf = z["cdf"].astype(np.int32)
            levels, channels = (int(v) for v in z["shape"])
            return cls(
                cdf, z["offsets"].astype(np.int32), z["sizes"].astype(np.int32), int(z["precision"]), levels, channels
            )

    def models(self, level: int) -> list:
        """Categorical models for one level's channels, built once from the integer counts."""
        if level not in self._models:
            rows = range(level * self.channels, (level + 1) * self.channels)
            self._models[level] = [
                constriction.stream.model.Categorical(
                    np.diff(self.cdf[k, : self.sizes[k] + 2]).astype(np.float64), perfect=False
                )
                for k in rows
            ]
        return self._models[level]

    def channel_range(self, level: int) -> tuple[np.ndarray, np.ndarray]:
        rows = slice(level * self.channels, (level + 1) * self.channels)
        return self.offsets[rows], self.sizes[rows]


def _zigzag(d: np.ndarray) -> np.ndarray:
    return np.where(d >= 0, 2 * d, -2 * d - 1).astype(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)


def encode(q: np.ndarray, tables: EntropyTables, level: int) -> bytes:
    """q: (channels, H, W) integer latents of one image at one level."""
    if q.ndim != 3 or q.shape[0] != tables.channels:
        raise ValueError(f"expected ({tables.channels}, H, W) latents, got {q.shape}")
    q = q.astype(np.int64)
    offsets, sizes = tables.channel_range(level)
    enc = constriction.stream.queue.RangeEncoder()
    escaped = []
    for c, model in enumerate(tables.models(level)):
        idx = q[c].ravel() - offsets[c]
        out = (idx < 0) | (idx >= sizes[c])
        if out.any():
            # Escaped values are stored relative to the nearest table edge, so small overshoots
            # stay cheap.
            edge = np.where(idx[out] < 0, 0, sizes[c] - 1)
            escaped.append(idx[out] - edge)
            idx = np.where(out, sizes[c], idx)
        enc.encode(idx.astype(np.int32), model)
    if escaped:
        _encode_escapes(enc, np.concatenate(escaped))
    return enc.get_compressed().astype("<u4").tobytes()


def _encode_escapes(enc, d: np.ndarray) -> None:
    u = _zigzag(d)  # >= 1: an escaped value is never on the table's edge
    nbits = np.array([int(v).bit_length() for v in u], dtype=np.int32)
    if nbits.max() > _MAX_BITS:
        raise ValueError("latent value too large to code")
    enc.encode(nbits - 1, constriction.stream.model.Uniform(_MAX_BITS))
    _code_bits(enc, u, nbits - 1, decode=False)


def _code_bits(coder, u: np.ndarray, nlow: np.ndarray, decode: bool) -> np.ndarray:
    """The nlow[i] bits of u[i] below its leading one, in chunks of at most 16 bits."""
    for start in range(0, _MAX_BITS, _CHUNK):
        width = np.clip(nlow - start, 0, _CHUNK)
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


def decode(data: bytes, shape: tuple[int, int, int], tables: EntropyTables, level: int) -> np.ndarray:
    """Inverse of encode; raises EntropyError for a payload that is not a valid code stream."""
    try:
        return _decode(data, shape, tables, level)
    except EntropyError:
        raise
    except (AssertionError, ValueError, RuntimeError, OverflowError) as e:
        # constriction reports an impossible code stream with an AssertionError
        raise EntropyError(f"corrupted latent payload ({e})") from None


def _decode(data: bytes, shape: tuple[int, int, int], tables: EntropyTables, level: int) -> np.ndarray:
    channels, h, w = shape
    if channels != tables.channels:
        raise EntropyError(f"file has {channels} latent channels, the model {tables.channels}")
    if len(data) % 4:
        raise EntropyError("entropy-coded payload is not a whole number of words")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    offsets, sizes = tables.channel_range(level)
    idx = np.empty((channels, h * w), dtype=np.int32)
    for c, model in enumerate(tables.models(level)):
        idx[c] = dec.decode(model, h * w)
    esc = idx == sizes[:, None]
    if esc.any():
        n = int(esc.sum())
        nlow = dec.decode(constriction.stream.model.Uniform(_MAX_BITS), n).astype(np.int32)
        u = np.left_shift(np.uint64(1), nlow.astype(np.uint64))
        d = _unzigzag(_code_bits(dec, u, nlow, decode=True))
        edge = np.broadcast_to(sizes[:, None] - 1, idx.shape)[esc]
        idx[esc] = np.where(d < 0, d, edge + d)
    idx += offsets[:, None]
    return idx.reshape(channels, h, w)
