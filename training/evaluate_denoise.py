"""Blind denoising benchmark of the installed `aec denoise` against classical denoisers.

    python -m training.evaluate_denoise --data DIR [--out results/denoise-kodak]

For each sigma (15, 25, 50 by default) it adds seeded white Gaussian noise to every image, saves
the noisy image as an 8-bit PNG (clipped and rounded: what a user has), runs `aec denoise` on the
whole folder in one process without --sigma, and measures PSNR over RGB (mean per image) and
throughput (megapixels per second of wall time, the process start included). On the same noisy
files it runs OpenCV's fastNlMeansDenoisingColored and scikit-image's denoise_nl_means (each with
the noise level estimated blindly by scikit-image, and skipped if not installed). Writes
denoise.json and denoise.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import list_images, load_rgb
from training.rd import psnr


def add_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)


def classical() -> dict:
    methods = {}
    try:
        import cv2

        def opencv(noisy: np.ndarray) -> np.ndarray:
            from skimage.restoration import estimate_sigma

            h = float(np.mean(estimate_sigma(noisy, channel_axis=-1)))
            bgr = cv2.fastNlMeansDenoisingColored(noisy[..., ::-1].copy(), None, h, h, 7, 21)
            return bgr[..., ::-1]

        methods["OpenCV fastNlMeansDenoisingColored"] = opencv
    except ImportError:
        pass
    try:
        from skimage.restoration import denoise_nl_means, estimate_sigma

        def skimage_nlm(noisy: np.ndarray) -> np.ndarray:
            x = noisy.astype(np.float64) / 255
            s = float(np.mean(estimate_sigma(x, channel_axis=-1)))
            out = denoise_nl_means(
                x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
            )
            return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

        methods["scikit-image denoise_nl_means"] = skimage_nlm
    except ImportError:
        pass
    return methods


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, default=Path("results/denoise"))
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--aec", default=shutil.which("aec") or "aec")
    ap.add_argument("--no-classical", action="store_true")
    ap.add_argument("--record", type=Path, help="write the aec figures into this manifest's default denoiser entry")
    args = ap.parse_args(argv)

    files = list_images(args.data)
    clean = [load_rgb(f) for f in files]
    megapixels = sum(c.shape[0] * c.shape[1] for c in clean) / 1e6
    methods = {} if args.no_classical else classical()
    results: dict[str, dict] = {"aec denoise": {}, **{m: {} for m in methods}}
    with tempfile.TemporaryDirectory() as tmp:
        for sigma in (float(s) for s in args.sigmas.split(",")):
            noisy_dir, out_dir = Path(tmp) / f"noisy{sigma:g}", Path(tmp) / f"clean{sigma:g}"
            noisy_dir.mkdir()
            noisy = []
            for i, (f, c) in enumerate(zip(files, clean, strict=True)):
                n = add_noise(c, sigma, seed=1000 * int(sigma) + i)
                Image.fromarray(n).save(noisy_dir / f"{f.stem}.png")
                noisy.append(np.asarray(Image.open(noisy_dir / f"{f.stem}.png").convert("RGB")))
            inputs = [str(noisy_dir / f"{f.stem}.png") for f in files]
            t0 = time.perf_counter()
            subprocess.run([args.aec, "denoise", "--quiet", "-o", f"{out_dir}/", *inputs], check=True)
            dt = time.perf_counter() - t0
            scores = [psnr(c, load_rgb(out_dir / f"{f.stem}.png")) for f, c in zip(files, clean, strict=True)]
            results["aec denoise"][f"{sigma:g}"] = {
                "psnr": round(float(np.mean(scores)), 3),
                "mp_per_s": round(megapixels / dt, 3),
            }
            for name, fn in methods.items():
                t0 = time.perf_counter()
                outs = [fn(n) for n in noisy]
                dt = time.perf_counter() - t0
                scores = [psnr(c, o) for c, o in zip(clean, outs, strict=True)]
                results[name][f"{sigma:g}"] = {
                    "psnr": round(float(np.mean(scores)), 3),
                    "mp_per_s": round(megapixels / dt, 3),
                }
            noisy_psnr = np.mean([psnr(c, n) for c, n in zip(clean, noisy, strict=True)])
            results.setdefault("noisy input", {})[f"{sigma:g}"] = {"psnr": round(float(noisy_psnr), 3)}
            print(f"sigma {sigma:g} done", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"data": str(args.data), "images": len(files), "results": results}
    (args.out / "denoise.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "denoise.md").write_text(markdown(report))
    print(markdown(report))
    if args.record:
        from training.evaluate import record

        record(args.record, "denoiser", {"blind": results["aec denoise"], "data": str(args.data)})


def markdown(report: dict) -> str:
    sigmas = list(next(iter(report["results"].values())).keys())
    head = "| method | " + " | ".join(f"σ={s} PSNR | MP/s" for s in sigmas) + " |"
    lines = [
        f"Blind denoising, {report['images']} images of `{report['data']}`, 8-bit noisy PNG input",
        "",
        head,
        "|---|" + "---|---|" * len(sigmas),
    ]
    for name, by_sigma in report["results"].items():
        cells = []
        for s in sigmas:
            r = by_sigma.get(s, {})
            cells.append(
                f"{r.get('psnr', float('nan')):.2f} | {r['mp_per_s']:.2f}"
                if "mp_per_s" in r
                else f"{r.get('psnr', float('nan')):.2f} | "
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
