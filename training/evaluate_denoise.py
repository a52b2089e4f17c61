"""Blind denoising benchmark of the installed `aec denoise` against classical denoisers.

    python -m training.evaluate_denoise --data DIR [--out results/denoise-kodak]
        [--conditions awgn15,...] [--crop N] [--every K] [--methods opencv,skimage,bm3d]

Conditions are training/degrade.py's CONDITIONS (AWGN 15/25/50 and camera and web noise of every
kind the training pipeline draws) plus "clean" (no noise: a clean photograph must come back
unchanged). For each, every image is degraded with its own seed and saved as an 8-bit PNG (what
a user has); `aec denoise` runs over the whole folder in one process without --sigma, and the
classical methods a user would reach for run on the same files, each blind, with the noise level
estimated by scikit-image: OpenCV's fastNlMeansDenoisingColored (h = the estimate, windows 7 and
21), scikit-image's denoise_nl_means (h = 0.8 sigma, 5x5 patches, 13x13 search) and BM3D (the
bm3d package, bm3d_rgb). PSNR is over RGB against the degradation's target (the clean image, or
its resized version where the condition resizes), mean per image; MP/s is wall time, the aec
process start included. --crop and --every make BM3D (about a minute per Kodak image here)
affordable. Writes denoise.json, denoise.md and, with --crops, a picture of one case.
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

from training import degrade
from training.data import list_images, load_rgb
from training.rd import psnr

CONDITIONS = {**degrade.CONDITIONS, "clean": degrade.Recipe(noise="none")}


def _sigma(noisy: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    return float(np.mean(estimate_sigma(noisy.astype(np.float64) / 255, channel_axis=-1)))


def classical(names: list[str]) -> dict:
    methods = {}
    if "opencv" in names:
        try:
            import cv2

            def opencv(noisy: np.ndarray) -> np.ndarray:
                h = 255 * _sigma(noisy)
                return cv2.fastNlMeansDenoisingColored(noisy[..., ::-1].copy(), None, h, h, 7, 21)[..., ::-1]

            methods["OpenCV fastNlMeansDenoisingColored"] = opencv
        except ImportError:
            pass
    if "skimage" in names:
        try:
            from skimage.restoration import denoise_nl_means

            def skimage_nlm(noisy: np.ndarray) -> np.ndarray:
                s = _sigma(noisy)
                x = noisy.astype(np.float64) / 255
                out = denoise_nl_means(
                    x, h=0.8 * s, sigma=s, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=-1
                )
                return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

            methods["scikit-image denoise_nl_means"] = skimage_nlm
        except ImportError:
            pass
    if "bm3d" in names:
        try:
            import bm3d

            def bm3d_rgb(noisy: np.ndarray) -> np.ndarray:
                out = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255, max(_sigma(noisy), 1e-3))
                return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)

            methods["BM3D"] = bm3d_rgb
        except ImportError:
            pass
    return methods


def centre_crop(a: np.ndarray, size: int) -> np.ndarray:
    if not size:
        return a
    h, w = a.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(a[y : y + size, x : x + size])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="folder of clean images (not needed with --report)")
    ap.add_argument("--report", type=Path, help="only print (and rewrite) the markdown of an earlier denoise.json")
    ap.add_argument("--out", type=Path, default=Path("results/denoise"))
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--methods", default="opencv,skimage,bm3d", help="classical methods to run ('' for none)")
    ap.add_argument("--crop", type=int, default=0, help="centre crops of this size (0: whole images)")
    ap.add_argument("--every", type=int, default=1, help="every k-th image only")
    ap.add_argument("--aec", default=shutil.which("aec") or "aec")
    ap.add_argument("--crops", default="", help="CONDITION: save noisy / aec / BM3D / clean crops of one image")
    ap.add_argument("--record", type=Path, help="write the aec figures into this manifest's default denoiser entry")
    ap.add_argument(
        "--compress",
        default="",
        help="CONDITION: also measure what `aec compress --denoise` saves on noisy inputs (BD-rate at equal "
        "PSNR to the clean original, levels 2..10)",
    )
    args = ap.parse_args(argv)
    if args.report:
        report = json.loads(args.report.read_text())
        args.report.with_suffix(".md").write_text(markdown(report))
        print(markdown(report))
        return
    if not args.data:
        ap.error("--data is required")

    files = list_images(args.data)[:: args.every]
    clean = [centre_crop(load_rgb(f), args.crop) for f in files]
    megapixels = sum(c.shape[0] * c.shape[1] for c in clean) / 1e6
    methods = classical([m for m in args.methods.split(",") if m])
    results: dict[str, dict] = {"aec denoise": {}, **{m: {} for m in methods}, "noisy input": {}}
    conditions = [c for c in args.conditions.split(",") if c]
    with tempfile.TemporaryDirectory() as tmp:
        for ci, cond in enumerate(conditions):
            recipe = CONDITIONS[cond]
            noisy_dir, out_dir = Path(tmp) / f"noisy-{cond}", Path(tmp) / f"clean-{cond}"
            noisy_dir.mkdir()
            targets, noisy = [], []
            for i, (f, c) in enumerate(zip(files, clean, strict=True)):
                t, n = degrade.apply(c, recipe, np.random.default_rng(1000 * ci + i))
                Image.fromarray(n).save(noisy_dir / f"{f.stem}.png")
                targets.append(t)
                noisy.append(n)
            t0 = time.perf_counter()
            inputs = [str(noisy_dir / f"{f.stem}.png") for f in files]
            subprocess.run([args.aec, "denoise", "--quiet", "-o", f"{out_dir}/", *inputs], check=True)
            dt = time.perf_counter() - t0
            outs = [load_rgb(out_dir / f"{f.stem}.png") for f in files]
            results["aec denoise"][cond] = _score(targets, outs, megapixels / dt)
            if cond == args.crops:
                _save_crops(args.out, cond, noisy, outs, targets, methods)
            for name, fn in methods.items():
                if cond == "clean" and name == "BM3D":
                    continue  # minutes of BM3D to learn that it blurs a clean photograph
                t0 = time.perf_counter()
                outs = [fn(n) for n in noisy]
                results[name][cond] = _score(targets, outs, megapixels / (time.perf_counter() - t0))
            if cond != "clean":  # identical to its target
                results["noisy input"][cond] = _score(targets, noisy, None)
            print(f"{cond} done: " + json.dumps({k: v.get(cond) for k, v in results.items()}), file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "data": str(args.data),
        "images": len(files),
        "crop": args.crop,
        "conditions": {c: CONDITIONS[c].describe() for c in conditions},
        "results": results,
    }
    if args.compress:
        report["compress_denoise"] = compress_saving(clean, args.compress)
    (args.out / "denoise.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "denoise.md").write_text(markdown(report))
    print(markdown(report))
    if args.record:
        from training.evaluate import record

        record(args.record, "denoiser", {"blind": results["aec denoise"], "data": str(args.data)})


def compress_saving(clean: list, cond: str) -> dict:
    """Noisy images coded as they are and with denoise=True: bits per pixel and PSNR against
    the clean target at levels 2..10, and the BD-rate of the second against the first."""
    import aecompress
    from training.rd import bd_rate

    recipe = CONDITIONS[cond]
    pairs = [degrade.apply(c, recipe, np.random.default_rng(7000 + i)) for i, c in enumerate(clean)]
    curves: dict[str, list] = {"plain": [], "denoise": []}
    pixels = sum(t.shape[0] * t.shape[1] for t, _ in pairs)
    for q in range(2, 11, 2):
        for how in curves:
            bits, scores = 0, []
            for target, noisy in pairs:
                data = aecompress.compress(noisy, q, device="cpu", denoise=how == "denoise")
                bits += 8 * len(data)
                scores.append(psnr(target, aecompress.decompress(data, device="cpu", output="numpy")))
            curves[how].append((bits / pixels, float(np.mean(scores))))
    # Coding noise past a point only moves the picture away from the clean original: each curve
    # counts up to its best PSNR, and the BD-rate is over the PSNR range both reach.
    rising = {k: v[: int(np.argmax([p for _, p in v])) + 1] for k, v in curves.items()}
    (rp, pp), (rd, pd) = (list(zip(*rising[k], strict=True)) for k in ("plain", "denoise"))
    return {
        "condition": cond,
        "levels": list(range(2, 11, 2)),
        "plain": [[round(r, 4), round(p, 3)] for r, p in curves["plain"]],
        "denoise": [[round(r, 4), round(p, 3)] for r, p in curves["denoise"]],
        "bd_rate_percent": round(bd_rate(rp, pp, rd, pd), 2),
        "best_psnr": {k: round(max(p for _, p in v), 3) for k, v in curves.items()},
    }


def rate_at(curve: list, target: float) -> float:
    """Bits per pixel at which a (bpp, PSNR) curve, rising part, first reaches target PSNR
    (log-rate interpolated linearly between levels); nan if it never does."""
    for (r0, p0), (r1, p1) in zip(curve, curve[1:], strict=False):
        if p0 <= target <= p1 and p1 > p0:
            t = (target - p0) / (p1 - p0)
            return float(np.exp(np.log(r0) + t * (np.log(r1) - np.log(r0))))
    return float("nan")


def _score(targets: list, outs: list, mp_per_s: float | None) -> dict:
    scores = [psnr(t, o) for t, o in zip(targets, outs, strict=True)]
    r = {"psnr": round(float(np.mean(scores)), 3)}
    if mp_per_s is not None:
        r["mp_per_s"] = round(mp_per_s, 3)
    return r


def _save_crops(out: Path, cond: str, noisy: list, aec: list, targets: list, methods: dict) -> None:
    """noisy / aec / BM3D / clean, side by side, 192-pixel crops of the first image at 2x."""
    i = 0
    h, w = targets[i].shape[:2]
    y, x = max(0, h // 2 - 96), max(0, w // 2 - 96)
    panels = [noisy[i], aec[i]]
    labels = ["noisy", "aec denoise"]
    if "BM3D" in methods:
        panels.append(methods["BM3D"](noisy[i]))
        labels.append("BM3D")
    panels.append(targets[i])
    labels.append("clean")
    tiles = [Image.fromarray(p[y : y + 192, x : x + 192]).resize((384, 384), Image.NEAREST) for p in panels]
    sheet = Image.new("RGB", (388 * len(tiles), 404), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(sheet)
    for k, (tile, label) in enumerate(zip(tiles, labels, strict=True)):
        sheet.paste(tile, (388 * k, 20))
        draw.text((388 * k + 4, 4), label, fill="black")
    out.mkdir(parents=True, exist_ok=True)
    sheet.save(out / f"crops-{cond}.png")


def markdown(report: dict) -> str:
    conds = list(report["conditions"])
    size = f"{report['crop']}x{report['crop']} centre crops of " if report["crop"] else ""
    lines = [
        f"Blind denoising, {size}{report['images']} images of `{report['data']}`, 8-bit noisy PNG input",
        "",
        "| method | " + " | ".join(conds) + " |",
        "|---|" + "---|" * len(conds),
    ]
    for name, by in report["results"].items():
        cells = []
        for c in conds:
            r = by.get(c)
            cells.append(
                "" if r is None else f"{r['psnr']:.2f}" + (f" ({r['mp_per_s']:.2f} MP/s)" if "mp_per_s" in r else "")
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Conditions:"] + [f"- {c}: {d}" for c, d in report["conditions"].items()]
    cd = report.get("compress_denoise")
    if cd:
        plain_rate, plain_best = max(cd["plain"], key=lambda rp: rp[1])
        den_rate = rate_at(cd["denoise"], plain_best)
        lines += [
            "",
            f"`aec compress --denoise` on {cd['condition']} inputs, PSNR against the clean original "
            f"(levels {cd['levels'][0]}..{cd['levels'][-1]}): BD-rate {cd['bd_rate_percent']:+.1f}% against coding "
            "the noisy image as it is, over the PSNR range both reach before coding more only adds noise; "
            f"best PSNR {cd['best_psnr']['denoise']:.2f} dB against {cd['best_psnr']['plain']:.2f} dB. "
            f"The plain coding's best, {plain_best:.2f} dB at {plain_rate:.3f} bpp, costs {den_rate:.3f} bpp "
            f"with --denoise ({100 * (1 - den_rate / plain_rate):.0f}% fewer bits).",
            "",
            "| level | plain bpp | plain PSNR | --denoise bpp | --denoise PSNR |",
            "|---|---|---|---|---|",
        ]
        for q, (rp, pp), (rd, pd) in zip(cd["levels"], cd["plain"], cd["denoise"], strict=True):
            lines.append(f"| {q} | {rp:.3f} | {pp:.2f} | {rd:.3f} | {pd:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
