"""Train the learned lifting corrections: python -m training.train_lifting --data DIR --ckpt FILE.

End-to-end rate-distortion on training crops: RGB -> ICT -> LearnedLifting -> each band divided
by the codec's own step for it (quantise.band_steps at a level drawn per step) -> additive uniform
noise for quantisation -> inverse -> RGB. The rate proxy (--rate context, the default) charges
each detail coefficient the code length of the context table row the real coder would code it
with (training/context_rate.py: within 1-2.5% of the coded payload); --rate laplace is the first
run's Laplacian per band and crop, blind to the contexts. Rate in bits per pixel; distortion is
the summed RGB squared error per pixel, weighted by the slope of a uniform quantiser's R-D curve
at that step, 6 / (ln 2 step^2), so that every level pulls alike.

Validation uses the real coder: the runtime's dead-zone quantiser and context coder (with the
shipped tables, which were fitted to the fixed transform: a conservative measure until they are
refitted) on held-out crops, RGB PSNR and whole-payload bits at four levels, reported as a
BD-rate against the untrained transform (step 0 of the log). Resumable; bf16 is not used: the
lifting is a chain of sums that bf16 would blur.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
import torch

from aecompress import entropy, quantise, wavelet
from aecompress.entropy import ContextTables
from training import context_rate
from training.checkpoints import load_state, restore_optimizer, split_files
from training.data import CropSampler, list_images, load_rgb
from training.lifting import LearnedLifting, rgb_to_ycc, ycc_to_rgb
from training.loop import add_arguments, optimise, run, schedule
from training.rd import bd_rate, psnr

VAL_LEVELS = (2, 4, 6, 8)


def laplace_bits(y: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Bits of noisy integers y under a zero-mean Laplacian of that scale (per band)."""

    def cdf(v):
        return 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / scale))

    p = (cdf(y + 0.5) - cdf(y - 0.5)).clamp_min(1e-9)
    return -torch.log2(p).sum()


def context_maps(bands: list, steps: list, tables: ContextTables, level: int) -> list:
    """Per image of the batch, the table rows (context_rate.row_maps) of the integers the
    runtime's quantiser makes of these bands (per channel, wavelet.forward's layout of (B, 1, h,
    w) tensors)."""
    levels = len(bands[0]) - 1
    out = []
    for i in range(bands[0][0].shape[0]):
        ints = []
        for c in range(3):
            one = [bands[c][0][i, 0].detach().float().numpy()] + [
                tuple(t[i, 0].detach().float().numpy() for t in tb) for tb in bands[c][1:]
            ]
            ints.append(quantise.quantise_bands(one, steps[c]))
        out.append(context_rate.row_maps(ints, levels, tables, level))
    return out


def rd_loss(
    model: LearnedLifting, rgb: torch.Tensor, tables: ContextTables, level: int, rate: str = "context"
) -> tuple[torch.Tensor, float, float]:
    """rgb (B, 3, H, W) on 0..255 -> (loss, bpp, RGB MSE) at one quality level of the tables.
    rate: "context" charges each detail coefficient its context row's code length
    (training/context_rate.py) and the low band a Laplacian; "laplace" a Laplacian per band and
    crop whose scale is the band's mean magnitude (a static entropy model's view)."""
    b, _, h, w = rgb.shape
    levels = wavelet.levels_for(h, w)
    base = float(tables.steps[level])
    steps = quantise.band_steps(base, levels, tables.band_scale)
    ycc = rgb_to_ycc(rgb)
    bands = [model(ycc[:, c : c + 1], levels) for c in range(3)]
    maps = context_maps(bands, steps, tables, level) if rate == "context" else None
    lengths = torch.from_numpy(context_rate.code_lengths(tables, level)) if maps else None
    bits = rgb.new_zeros(())
    rec = []
    for c in range(3):
        noisy = [bands[c][0] / steps[c][0] + torch.rand_like(bands[c][0]) - 0.5]
        bits = bits + _laplace(noisy[0])
        for k in range(1, levels + 1):
            level_noisy = []
            for o in range(3):
                y = bands[c][k][o] / steps[c][k][o]
                y = y + torch.rand_like(y) - 0.5
                if maps is None:
                    bits = bits + _laplace(y)
                else:
                    rows = torch.from_numpy(np.stack([m[c][k][o] for m in maps])).long()
                    bits = bits + context_rate.band_bits(y[:, 0], rows, lengths)
                level_noisy.append(y)
            noisy.append(level_noisy)
        rebuilt = [noisy[0] * steps[c][0]] + [
            tuple(y * s for y, s in zip(noisy[k], steps[c][k], strict=True)) for k in range(1, levels + 1)
        ]
        rec.append(model.inverse(rebuilt))
    out = ycc_to_rgb(torch.cat(rec, dim=1))
    mse = torch.mean((out - rgb) ** 2)
    bpp = bits / (b * h * w)
    lam = 6 / (math.log(2) * base**2)
    return bpp + lam * 3 * mse, float(bpp.detach()), float(mse.detach())


def _laplace(y: torch.Tensor) -> torch.Tensor:
    scale = y.detach().abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(0.05)
    return laplace_bits(y, scale)


@torch.no_grad()
def real_point(model: LearnedLifting, rgb: np.ndarray, tables: ContextTables, level: int) -> tuple[float, float]:
    """(3, H, W) uint8 -> (bpp of the context-coded payload, RGB PSNR) through the runtime's
    quantiser and coder, with the transform in PyTorch."""
    h, w = rgb.shape[1:]
    levels = wavelet.levels_for(h, w)
    base = float(tables.steps[level - 1])
    steps = quantise.band_steps(base, levels, tables.band_scale)
    ycc = rgb_to_ycc(torch.from_numpy(rgb[None].astype(np.float64)))
    ints, deq = [], []
    for c in range(3):
        bands = model(ycc[:, c : c + 1], levels)
        npb = [bands[0][0, 0].numpy().astype(np.float32)] + [
            tuple(t[0, 0].numpy().astype(np.float32) for t in tb) for tb in bands[1:]
        ]
        q = quantise.quantise_bands(npb, steps[c])
        ints.append(q)
        deq.append(quantise.dequantise_bands(q, steps[c]))
    payload = entropy.encode(ints, levels, tables, level - 1)
    rec = []
    for c in range(3):
        d = deq[c]
        tb = [torch.from_numpy(d[0]).double()[None, None]] + [
            tuple(torch.from_numpy(t).double()[None, None] for t in lv) for lv in d[1:]
        ]
        rec.append(model.inverse(tb))
    out = ycc_to_rgb(torch.cat(rec, dim=1))[0].numpy()
    out = np.clip(np.rint(out), 0, 255)
    return 8 * len(payload) / (h * w), psnr(out.transpose(1, 2, 0), rgb.transpose(1, 2, 0).astype(np.float64))


def val_crops(files: list[Path], size: int = 256) -> list[np.ndarray]:
    out = []
    for f in files:
        a = load_rgb(f)
        h, w = a.shape[:2]
        n = min(size, min(h, w) // 16 * 16)  # even at every level the networks see
        if n < 16:
            continue
        y, x = (h - n) // 2, (w - n) // 2
        out.append(np.ascontiguousarray(a[y : y + n, x : x + n].transpose(2, 0, 1)))
    return out


def validate(model: LearnedLifting, crops: list[np.ndarray], tables: ContextTables, ref: list | None) -> list[dict]:
    model.eval()
    m = model.double()
    rows = []
    for lv in VAL_LEVELS:
        pts = np.array([real_point(m, c, tables, lv) for c in crops])
        rows.append({"level": lv, "bpp": float(pts[:, 0].mean()), "psnr": float(pts[:, 1].mean())})
    model.float().train()
    if ref:
        bd = bd_rate(
            [r["bpp"] for r in ref], [r["psnr"] for r in ref], [r["bpp"] for r in rows], [r["psnr"] for r in rows]
        )
        rows.append({"level": 0, "bd_rate_vs_fixed": round(bd, 3)})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap, lr=2e-4, lr_final=0.1, crop=128, batch=8, val_every=500, val_count=30)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--skip", type=int, default=0, help="finest levels left plain CDF 9/7 (the runtime's cost)")
    ap.add_argument("--rate", choices=["context", "laplace"], default="context", help="rate proxy (see rd_loss)")
    ap.add_argument(
        "--tables", type=Path, help="context tables for the rate and for validation (default: the shipped codec's)"
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    state = load_state(args.ckpt)
    cfg = state["config"] if state else {"width": args.width, "skip": args.skip}
    model = LearnedLifting(**cfg)
    step = 0
    if state:
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
        step = state["step"]
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state:
        restore_optimizer(opt, state, [args.lr])
    if args.tables is None:
        from aecompress import models

        args.tables = models.get(models.tuned("psnr"), "codec").path("tables")
    tables = ContextTables.load(args.tables)
    train_files, val_files = split_files(list_images(args.data), args.val_count)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    crops = val_crops(val_files)[:8]
    rng = np.random.default_rng(args.seed + step)
    fixed = validate(LearnedLifting(**cfg), crops, tables, None) if crops else None
    print(f"lifting {cfg}: start step {step}; fixed transform {fixed}", flush=True)

    def train_step() -> float:
        rgb = sampler.batch(args.batch) * 255
        level = int(rng.integers(0, tables.levels))
        loss, _, _ = rd_loss(model, rgb, tables, level, args.rate)
        return optimise(opt, loss, model.parameters())

    sched = schedule(args)
    run(
        model,
        opt,
        args.ckpt,
        cfg,
        step,
        sched,
        train_step,
        (lambda: validate(model, crops, tables, fixed)) if crops else None,
        lambda rows: " ".join(f"{k}={v:.4g}" for r in rows for k, v in r.items() if k != "level"),
    )


if __name__ == "__main__":
    main()
