"""Every file of a folder (Pillow's own test corpus, say) through the installed `aec`, in every mode.

    python -m benchmarks.corpus DIR [--aec aec] [--json FILE]

The files are linked into one flat folder under unique names; for each mode (lossy at the
default level, --lossless, --max-error 2) one `aec compress` runs over all of them (a bad file
must not stop the rest), then one `aec decompress` over every .lat made, and it reports: files
made, files decoded, geometry checked, lossless files bit-exact against the samples
aecompress.images.read_samples reads (8 and 16 bits), the near-lossless bound, every stderr
line that does not start with "aec:" (the bar: none), and tracebacks (the bar: none).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from aecompress import images

MODES = {"lossy": [], "lossless": ["--lossless"], "max-error-2": ["--max-error", "2"]}


def run(cmd: list[str]) -> tuple[int, list[str]]:
    p = subprocess.run(cmd, capture_output=True, timeout=3600)
    return p.returncode, p.stderr.decode("utf-8", "replace").splitlines()


def reference(path: Path) -> images.Samples | None:
    try:
        return images.read_samples(path.read_bytes())
    except (images.ImageError, ValueError, OSError):
        return None


def decoded(path: Path) -> np.ndarray:
    """An output PNG's samples (through the same reader the inputs went through)."""
    return images.read_samples(path.read_bytes()).array


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--aec", default="aec")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--modes", default=",".join(MODES), help="which of " + ", ".join(MODES))
    args = ap.parse_args(argv)
    files = sorted(p for p in args.folder.rglob("*") if p.is_file())
    report: dict = {"files": len(files)}
    with tempfile.TemporaryDirectory() as tmp:
        flat = Path(tmp) / "in"
        flat.mkdir()
        names = {}
        for i, f in enumerate(files):
            link = flat / f"{i:04d}_{f.name}"
            link.symlink_to(f.resolve())
            names[f"{i:04d}_{Path(f.name).stem}"] = f
        for mode, flags in ((m, MODES[m]) for m in args.modes.split(",")):
            lats, pngs = Path(tmp) / mode / "lat", Path(tmp) / mode / "png"
            lats.mkdir(parents=True)
            pngs.mkdir()
            _, err = run([args.aec, "compress", *flags, *map(str, sorted(flat.iterdir())), "-o", f"{lats}/"])
            stray = [line for line in err if not line.startswith("aec:")]
            tracebacks = sum("Traceback" in line for line in err)
            made = sorted(lats.iterdir())
            if made:
                _, err = run([args.aec, "decompress", *map(str, made), "-o", f"{pngs}/"])
                stray += [line for line in err if not line.startswith("aec:")]
                tracebacks += sum("Traceback" in line for line in err)
            ok = exact = checked = bound_bad = 0
            for out in sorted(pngs.iterdir()):
                ok += 1
                ref = reference(names[out.stem])
                if ref is None:
                    continue
                got = decoded(out)
                if got.shape[:2] != ref.array.shape[:2]:
                    continue
                checked += 1
                if mode == "lossless":
                    exact += got.shape == ref.array.shape and np.array_equal(got, ref.array)
                elif mode == "max-error-2" and got.shape == ref.array.shape:
                    nc = 3 if ref.mode.startswith("RGB") else 1
                    diff = np.abs(got[..., :nc].astype(np.int64) - ref.array[..., :nc])
                    bound_bad += int(diff.max(initial=0) > 2 or not np.array_equal(got[..., nc:], ref.array[..., nc:]))
            report[mode] = {
                "made": len(made),
                "decoded": ok,
                "geometry_checked": checked,
                "bit_exact": exact if mode == "lossless" else None,
                "bound_violations": bound_bad if mode == "max-error-2" else None,
                "stderr_lines_not_aec": len(stray),
                "tracebacks": tracebacks,
                "examples": stray[:5],
            }
            print(mode, json.dumps(report[mode]), file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
