"""Lossless and near-lossless benchmark: python -m training.evaluate_lossless --data DIR [--out DIR].

For every image of the folder (8-bit RGB), in one process on this machine:
- aec --lossless (the library, as `aec compress --lossless` codes it): whole-file bits per pixel,
  the decoded image checked bit-exact against the input;
- PNG (Pillow, optimize), JPEG 2000 reversible (Pillow/OpenJPEG, 5/3 with the RCT), WebP
  lossless (Pillow/libwebp, method 6, quality 100), all checked bit-exact too;
- aec --max-error 1 and 2: bits per pixel and the largest error seen;
- speed, best of --repeat runs per image: aec's in-process encode and decode against Pillow's
  JPEG 2000 lossless save and open of the same image, and aec's again with its NumPy reference
  loops in place of the compiled ones (what an install without a C compiler runs);
- the 1/8 preview: decode time against the full decode, and the bytes of the file it reads.
Writes lossless.json and lossless.md.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import aecompress
from aecompress import loops
from aecompress.api import read_lat
from training.data import list_images, load_rgb

REFERENCES = {
    "PNG (Pillow, optimize)": ("PNG", {"optimize": True}),
    "JPEG 2000 reversible (OpenJPEG 5/3 + RCT)": ("JPEG2000", {"irreversible": False, "mct": 1}),
    "WebP lossless (method 6, quality 100)": ("WEBP", {"lossless": True, "quality": 100, "method": 6}),
}


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, default=Path("results/lossless"))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    files = list_images(args.data)
    bits: dict[str, float] = {}
    exact: dict[str, int] = {}
    max_err = {1: 0, 2: 0}
    times = {"aec encode": 0.0, "aec decode": 0.0, "JPEG 2000 save": 0.0, "JPEG 2000 open": 0.0, "preview 1/8": 0.0}
    compiled = loops.compiled
    if compiled is not None:
        times |= {"aec encode, NumPy loops": 0.0, "aec decode, NumPy loops": 0.0}
    read_share = 0.0
    pixels = 0
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            rgb = load_rgb(f)
            pixels += rgb.shape[0] * rgb.shape[1]
            data = aecompress.compress(rgb, lossless=True)
            back = aecompress.decompress(data, output="numpy")
            bits["aec --lossless"] = bits.get("aec --lossless", 0) + 8 * len(data)
            exact["aec --lossless"] = exact.get("aec --lossless", 0) + int(np.array_equal(back, rgb))
            for n in (1, 2):
                near = aecompress.compress(rgb, max_error=n)
                got = aecompress.decompress(near, output="numpy")
                bits[f"aec --max-error {n}"] = bits.get(f"aec --max-error {n}", 0) + 8 * len(near)
                max_err[n] = max(max_err[n], int(np.abs(got.astype(int) - rgb).max()))
            for name, (fmt, opts) in REFERENCES.items():
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, fmt, **opts)
                bits[name] = bits.get(name, 0) + 8 * buf.tell()
                dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
                exact[name] = exact.get(name, 0) + int(np.array_equal(dec, rgb))
            times["aec encode"] += best(lambda rgb=rgb: aecompress.compress(rgb, lossless=True), args.repeat)
            times["aec decode"] += best(lambda data=data: aecompress.decompress(data, output="numpy"), args.repeat)
            j2k = io.BytesIO()
            Image.fromarray(rgb).save(j2k, "JPEG2000", irreversible=False, mct=1)
            times["JPEG 2000 save"] += best(
                lambda rgb=rgb: Image.fromarray(rgb).save(io.BytesIO(), "JPEG2000", irreversible=False, mct=1),
                args.repeat,
            )
            j2k_bytes = j2k.getvalue()
            times["JPEG 2000 open"] += best(lambda b=j2k_bytes: Image.open(io.BytesIO(b)).load(), args.repeat)
            path = Path(tmp) / "a.lat"
            path.write_bytes(data)
            times["preview 1/8"] += best(
                lambda path=path: aecompress.decompress(path, scale=1 / 8, output="numpy"), args.repeat
            )
            read_share += len(read_lat(path, 3)) / len(data)
            if compiled is not None:
                loops.compiled = None
                try:
                    times["aec encode, NumPy loops"] += best(
                        lambda rgb=rgb: aecompress.compress(rgb, lossless=True), args.repeat
                    )
                    times["aec decode, NumPy loops"] += best(
                        lambda data=data: aecompress.decompress(data, output="numpy"), args.repeat
                    )
                finally:
                    loops.compiled = compiled
    n = len(files)
    report = {
        "data": str(args.data),
        "images": n,
        "bpp": {k: round(v / pixels, 3) for k, v in bits.items()},
        "bit_exact": {k: f"{v}/{n}" for k, v in exact.items()},
        "max_error_seen": {str(k): v for k, v in max_err.items()},
        "compiled_loops": compiled is not None,
        "seconds_per_image": {k: round(v / n, 4) for k, v in times.items()},
        "preview_reads_share_of_file": round(read_share / n, 4),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lossless.json").write_text(json.dumps(report, indent=2) + "\n")
    md = markdown(report)
    (args.out / "lossless.md").write_text(md)
    print(md)


def markdown(r: dict) -> str:
    lines = [
        f"Lossless coding, {r['images']} images of `{r['data']}` (8-bit RGB), whole files",
        "",
        "| coder | bpp | bits per subpixel | bit-exact |",
        "|---|---|---|---|",
    ]
    for name, bpp in r["bpp"].items():
        ex = r["bit_exact"].get(name, f"max error {r['max_error_seen'].get(name[-1], '')}")
        lines.append(f"| {name} | {bpp:.3f} | {bpp / 3:.3f} | {ex} |")
    s = r["seconds_per_image"]
    lines += [
        "",
        "| per image, best of runs | seconds |",
        "|---|---|",
        *[f"| {k} | {v:.4f} |" for k, v in s.items()],
        "",
        f"The 1/8 preview reads {100 * r['preview_reads_share_of_file']:.2f}% of the file "
        f"and decodes {s['aec decode'] / max(s['preview 1/8'], 1e-9):.1f}x faster than the whole image.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
