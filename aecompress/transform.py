"""The codec's wavelet, fixed or learned: one channel <-> [LL, (HL, LH, HH) coarsest .. finest].

A fixed model (every model up to now) runs JPEG 2000's CDF 9/7 lifting in NumPy
(aecompress.wavelet). A learned model's manifest names two more graphs: `encoder`, one analysis
level, and `synthesis`, its inverse, each the CDF 9/7 level whose last predict and update steps
add a small network's correction (training/lifting.py). Reconstruction stays perfect whatever
the corrections are, so a learned transform keeps the codec's unlimited quality. The finest
`skip` levels stay plain and run in NumPy: at full resolution a correction costs ten times the
plain level here, and the coarse levels are where a low rate's bits go.

A level's graph runs on tiles of the level's input with a halo wider than the corrections'
reach (about 29 samples: four lifting steps and two three-layer convolutions, across both
passes), cut at even offsets so that each tile's bands are whole; the stitched bands equal the
untiled ones up to float rounding, and memory stays bounded on large images. The decoder's
float arithmetic decides no probability (the bands' integers come from the entropy decoder), so
a file decodes to the same integers on every machine and provider.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aecompress import wavelet

TILE = 512  # of a level's input, in samples (even)
HALO = 32  # even, and beyond the corrections' reach
Session = Callable[[str], object]  # role -> ONNX Runtime session, created on first use


class Transform:
    """A model's wavelet; learned levels from `skip` on when sessions are given."""

    def __init__(self, skip: int | None = None, session: Session | None = None, tile: int = TILE) -> None:
        self.skip = skip  # None: fixed, every level in NumPy
        self._session = session
        self.tile = tile

    @property
    def learned(self) -> bool:
        return self.skip is not None

    def forward(self, x: np.ndarray, levels: int) -> list:
        """x (H, W) float32 -> [LL, (HL, LH, HH) coarsest .. finest]."""
        if not self.learned:
            return wavelet.forward(x, levels)
        details = []
        low = np.asarray(x, dtype=np.float32)
        for i in range(levels):
            if i < self.skip:
                low, detail = wavelet.forward(low, 1)
            else:
                low, *detail = self._analyse(low)
            details.append(tuple(detail))
        return [low] + details[::-1]

    def inverse(self, bands: list, upto: int | None = None) -> np.ndarray:
        """Inverse of forward; with upto, only the first `upto` detail levels (coarsest first)."""
        if not self.learned:
            return wavelet.inverse(bands, upto)
        levels = len(bands) - 1
        low = np.asarray(bands[0], dtype=np.float32)
        for j, detail in enumerate(bands[1 : None if upto is None else upto + 1]):
            if levels - 1 - j < self.skip:
                low = wavelet.inverse([low, detail])
            else:
                low = self._synthesise(low, *detail)
        return low

    def _run(self, role: str, feeds: dict) -> list:
        sess = self._session(role)
        return sess.run(None, {k: v[None, None] for k, v in feeds.items()})

    def _analyse(self, x: np.ndarray) -> list:
        """One learned level of x (h, w) -> [LL, HL, LH, HH], tile by tile."""
        h, w = x.shape
        if h <= self.tile + 2 * HALO and w <= self.tile + 2 * HALO:
            return [b[0, 0] for b in self._run("encoder", {"x": x})]
        out = [np.empty(s, np.float32) for s in _level_shapes(h, w)]
        for y0, y1, x0, x1, ey0, ey1, ex0, ex1 in _tiles(h, w, self.tile):
            parts = self._run("encoder", {"x": np.ascontiguousarray(x[ey0:ey1, ex0:ex1])})
            for band, part, (py, px) in zip(out, parts, _PARITY, strict=True):
                (a, b), (c, d) = _kept(y0, y1, py), _kept(x0, x1, px)
                band[a:b, c:d] = part[0, 0, a - ey0 // 2 : b - ey0 // 2, c - ex0 // 2 : d - ex0 // 2]
        return out

    def _synthesise(self, ll: np.ndarray, hl: np.ndarray, lh: np.ndarray, hh: np.ndarray) -> np.ndarray:
        """Inverse of _analyse."""
        bands = [np.asarray(b, dtype=np.float32) for b in (ll, hl, lh, hh)]
        h, w = ll.shape[0] + lh.shape[0], ll.shape[1] + hl.shape[1]
        names = ("ll", "hl", "lh", "hh")
        if h <= self.tile + 2 * HALO and w <= self.tile + 2 * HALO:
            return self._run("synthesis", dict(zip(names, bands, strict=True)))[0][0, 0]
        out = np.empty((h, w), np.float32)
        for y0, y1, x0, x1, ey0, ey1, ex0, ex1 in _tiles(h, w, self.tile):
            feeds = {}
            for name, band, (py, px) in zip(names, bands, _PARITY, strict=True):
                (a, b), (c, d) = _kept(ey0, ey1, py), _kept(ex0, ex1, px)
                feeds[name] = np.ascontiguousarray(band[a:b, c:d])
            part = self._run("synthesis", feeds)[0][0, 0]
            out[y0:y1, x0:x1] = part[y0 - ey0 : y1 - ey0, x0 - ex0 : x1 - ex0]
        return out


# (row, column) parity of LL, HL, LH, HH: 0 where the band holds the even (low-pass) samples
_PARITY = ((0, 0), (0, 1), (1, 0), (1, 1))


def _level_shapes(h: int, w: int) -> list[tuple[int, int]]:
    return [((h + 1 - py) // 2, (w + 1 - px) // 2) for py, px in _PARITY]


def _kept(a: int, b: int, parity: int) -> tuple[int, int]:
    """The band samples of input positions a..b (a even) along one axis."""
    return a // 2, (b + 1 - parity) // 2


def _tiles(h: int, w: int, tile: int):
    """(y0, y1, x0, x1) of each tile and (ey0, ey1, ex0, ex1) of it grown by the halo, all even
    but the image's own ends."""
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            yield y0, y1, x0, x1, max(0, y0 - HALO), min(h, y1 + HALO), max(0, x0 - HALO), min(w, x1 + HALO)


def for_model(info, session: Session) -> Transform:
    """The transform a codec model's manifest entry describes."""
    spec = info.meta.get("transform")
    if not spec:
        return Transform()
    return Transform(int(spec["skip"]), session)
