"""Crafted lossless payloads: sections rewritten with valid checksums, decoded in process.

    python fuzz/crafted_lossless.py [--seed N] [--trials N]

The checksums catch damage; a crafted file passes them, so the decoder itself (the compiled
loops of aecompress/csrc/ included) must turn any section into a clean error or
some picture, and never crash the process. Seeds are lossless and max-error-2 files of
8- and 16-bit grey, RGB and RGBA photographs with grain; each trial rewrites 1-5 bytes of one
section and truncates every third. Prints how many decoded and how many were refused; a crash
is the process dying.
"""

from __future__ import annotations

import argparse

import numpy as np

import aecompress
from aecompress import container, lossless

SEEDS = [((29, 45), 4, 8), ((64, 80), 3, 8), ((40, 33), 1, 16), ((70, 50), 3, 16)]


def photo(h: int, w: int, channels: int, bits: int, rng: np.random.Generator) -> np.ndarray:
    top = (1 << bits) - 1
    y, x = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.4 * np.sin(x / 6.0)[..., None] * np.cos(y / 9.0)[..., None]
    a = np.clip((base + rng.normal(0, 0.03, (h, w, channels))) * top, 0, top)
    return a.astype(np.uint16 if bits > 8 else np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--trials", type=int, default=400, help="per seed file")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    codec = lossless.LosslessCodec()
    decoded = refused = 0
    for shape, channels, bits in SEEDS:
        a = photo(*shape, channels, bits, rng)
        for max_error in (0, 2):
            data = aecompress.compress(a, max_error=max_error) if max_error else aecompress.compress(a, lossless=True)
            lat = container.parse(data)
            for trial in range(args.trials):
                sections = list(lat.sections)
                i = int(rng.integers(0, len(sections)))
                b = bytearray(sections[i])
                for _ in range(int(rng.integers(1, 6))):
                    if b:
                        b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
                if trial % 3 == 0:
                    b = b[: int(rng.integers(0, len(b) + 1))]
                sections[i] = bytes(b)
                crafted = container.LatFile(lat.header, b"", None, lat.icc, lat.exif, lat.xmp, tuple(sections))
                try:
                    codec.decompress(container.parse(crafted.pack()))
                    decoded += 1
                except container.FormatError:
                    refused += 1
    print(f"decoded {decoded}, refused {refused}, no crash")


if __name__ == "__main__":
    main()
