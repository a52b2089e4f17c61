"""Search the quantiser's band step factors for a metric: python -m training.tune_steps --data DIR.

The codec's steps are MSE-optimal: every band costs the same pixel error per unit of
quantisation error. MS-SSIM weighs scales differently (the finest scale's structure term has
weight 0.045, the next three 0.24-0.30) and looks at contrast, not error energy, so other steps
serve it better. This tries factors per channel and detail level (quantise.SCALE_SHAPE) by
coordinate descent, scoring each set by its BD-rate against the current best on
-10 log10(1 - MS-SSIM) (or PSNR with --metric psnr), from whole .lat files of the given model at a
range of levels, decoded without the post-filter (the filter is trained for the steps afterwards).

Validation images: every 6th of the large `wiki_*` photographs, shrunk by 2 (clean, near Kodak's
size); Kodak is never used. Writes the search log and the best factors as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import codec, container, quantise
from training.data import list_images, load_rgb
from training.rd import bd_rate, ms_ssim, psnr, ssim_db


def val_images(folder: str, every: int = 6) -> list[np.ndarray]:
    files = [f for f in list_images(folder) if f.name.startswith("wiki_")][::every]
    out = []
    for f in files:
        a = load_rgb(f)
        im = Image.fromarray(a).resize((a.shape[1] // 2, a.shape[0] // 2), Image.LANCZOS)
        out.append(np.asarray(im))
    return out


def curve(
    cod: codec.Codec, imgs: list[np.ndarray], levels: list[int], scale: np.ndarray, filtered: bool = False
) -> list[dict]:
    """Mean bpp, PSNR and MS-SSIM (dB) per level with these step factors (decoded through the
    model's post-filter with filtered)."""
    cod.tables.band_scale = scale
    rows = []
    for q in levels:
        pts = []
        for a in imgs:
            data = cod.compress(Image.fromarray(a), q)
            rec = cod.reconstruct(cod.decode_bands(container.parse(data)), q, a.shape[:2], filtered=filtered)
            pts.append((8 * len(data) / (a.shape[0] * a.shape[1]), psnr(a, rec), ssim_db(ms_ssim(a, rec))))
        bpp, p, s = np.mean(pts, axis=0)
        rows.append({"quality": q, "bpp": float(bpp), "psnr": float(p), "msssim_db": float(s)})
    return rows


def score(ref: list[dict], test: list[dict], metric: str) -> float:
    key = "msssim_db" if metric == "msssim" else "psnr"
    return bd_rate([r["bpp"] for r in ref], [r[key] for r in ref], [r["bpp"] for r in test], [r[key] for r in test])


# The factors searched, as (channel rows, column) groups moved together: luma's three finest
# levels one by one, luma's coarser levels and low band together, and chroma per level class.
GROUPS = {
    "y1": ([0], [0]),
    "y2": ([0], [1]),
    "y3": ([0], [2]),
    "ycoarse": ([0], [3, 4, 5, 6]),
    "c1": ([1, 2], [0]),
    "c2": ([1, 2], [1]),
    "ccoarse": ([1, 2], [2, 3, 4, 5, 6]),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="cdf97-ctx-v4")
    ap.add_argument("--metric", choices=["msssim", "psnr"], default="msssim")
    ap.add_argument("--levels", default="1,2,3,4,5,6,7,8")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--factors", default="0.7,1.4", help="multipliers tried on a group each round")
    ap.add_argument("--out", type=Path, default=Path("results/tune-steps.json"))
    ap.add_argument("--start", type=Path, help="continue from the best factors of an earlier search's JSON")
    ap.add_argument(
        "--filtered", action="store_true", help="score through the model's post-filter (a model trained for its steps)"
    )
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # MS-SSIM's small convolutions: more threads only contend
    imgs = val_images(args.data)
    levels = [int(v) for v in args.levels.split(",")]
    cod = codec.Codec(args.model, device="cpu")
    plain = curve(cod, imgs, levels, np.ones(quantise.SCALE_SHAPE), args.filtered)
    best, best_curve = np.ones(quantise.SCALE_SHAPE), plain
    if args.start:
        best = np.asarray(json.loads(args.start.read_text())["best"], np.float64)
        best_curve = curve(cod, imgs, levels, best, args.filtered)
    log = [{"scale": np.ones(quantise.SCALE_SHAPE).tolist(), "bd": 0.0, "curve": plain}]
    print(f"{len(imgs)} images; start {best_curve}", file=sys.stderr, flush=True)
    for rnd in range(args.rounds):
        for name, (rows, cols) in GROUPS.items():
            for f in (float(v) for v in args.factors.split(",")):
                trial = best.copy()
                trial[np.ix_(rows, cols)] *= f
                c = curve(cod, imgs, levels, trial, args.filtered)
                bd = score(best_curve, c, args.metric)
                log.append({"round": rnd, "group": name, "factor": f, "scale": trial.tolist(), "bd": bd, "curve": c})
                print(f"round {rnd} {name} x{f}: {bd:+.2f}%", file=sys.stderr, flush=True)
                if bd < -0.2:
                    best, best_curve = trial, c
                    break
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"metric": args.metric, "best": best.tolist(), "log": log}, indent=1) + "\n")
    start = log[0]["curve"]
    gain, cost = score(start, best_curve, args.metric), score(start, best_curve, "psnr")
    print(f"best {np.round(best, 3).tolist()}: {args.metric} BD-rate vs MSE steps {gain:+.2f}%, PSNR {cost:+.2f}%")


if __name__ == "__main__":
    main()
