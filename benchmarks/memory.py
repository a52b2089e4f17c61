"""Peak memory of the installed `aec` on a large photograph, each command its own process.

    python -m benchmarks.memory PHOTO [--size 6000x4000] [--noise 3] [--modes lossless,lossy] [--json FILE]

PHOTO is resized to --size (bicubic) and every sample gets uniform integer noise in
[-noise, noise]: sensor-like grain, the hard case for the coders (many nonzero coefficients,
a large file). Then for each mode `aec compress` and `aec decompress` run under
`/usr/bin/time -v`, and their maximum resident set sizes are reported in GB (10^9 bytes).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

MODES = {"lossless": ["--lossless"], "lossy": [], "max-error-2": ["--max-error", "2"]}


def peak_gb(cmd: list[str]) -> float:
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True)
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return round(kb * 1024 / 1e9, 3)


def make_photo(src: Path, size: tuple[int, int], noise: int, out: Path) -> None:
    im = Image.open(src).convert("RGB").resize(size, Image.BICUBIC)
    a = np.asarray(im).astype(np.int16)
    if noise:
        a += np.random.default_rng(0).integers(-noise, noise + 1, a.shape, dtype=np.int16)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("photo", type=Path)
    ap.add_argument("--size", default="6000x4000")
    ap.add_argument("--noise", type=int, default=3)
    ap.add_argument("--modes", default="lossless,lossy", help="of " + ", ".join(MODES))
    ap.add_argument("--aec", default="aec")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    report: dict = {"photo": str(args.photo), "size": args.size, "noise": args.noise}
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.png"
        make_photo(args.photo, (w, h), args.noise, big)
        for mode in args.modes.split(","):
            lat, back = Path(tmp) / f"{mode}.lat", Path(tmp) / f"{mode}.png"
            report[mode] = {
                "compress_gb": peak_gb([args.aec, "compress", *MODES[mode], str(big), "-o", str(lat)]),
                "decompress_gb": peak_gb([args.aec, "decompress", str(lat), "-o", str(back)]),
                "lat_bytes": lat.stat().st_size,
            }
            print(mode, json.dumps(report[mode]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
