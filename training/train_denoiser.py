"""Train the blind denoiser: python -m training.train_denoiser --data DIR --ckpt FILE [--init W].

Clean targets are the training photographs shrunk by two (BSDS500's JPEGs carry artifacts and
the larger photographs sensor noise; shrinking removes most of both). Each crop then goes through
its own random degradation of training/degrade.py: white, colour or camera (Poisson-Gaussian in
linear light) noise, spatially correlated by a Bayer demosaic or a blur, resized, JPEG'd once or
twice, rounded to 8 bits as a user's file is. The network is steered by a noise-level map: most
of the time the runtime's blind estimate (aecompress.noise_level) of the noisy crop, otherwise
the true standard deviation of its noise, so that both the default and `--sigma N` are in
distribution. bf16 autocast where it is native (see train_postfilter) and channels_last; L1 loss
in float32. Resumable like
train_postfilter; --init starts a new checkpoint from shipped weights.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecompress.images import psnr
from aecompress.noise_level import estimate_sigma
from training import degrade
from training.checkpoints import load_state, restore_optimizer, split_files
from training.data import CropSampler, list_images, load_rgb
from training.loop import add_arguments, add_bf16_argument, optimise, resolve_bf16, run, schedule
from training.nets import Denoiser

BLIND_SHARE = 0.7  # of crops steered by the blind estimate rather than the true level


def sigma_maps(noisy: np.ndarray, target: np.ndarray, blind: np.ndarray) -> torch.Tensor:
    """noisy, target (B, H, W, 3) uint8 -> (B, 1, H, W) maps of sigma/255: the blind estimate
    where blind is set, else the standard deviation of the noise actually present."""
    levels = [
        estimate_sigma(n) if b else float(np.std(n.astype(np.float32) - t))
        for n, t, b in zip(noisy, target, blind, strict=True)
    ]
    lv = torch.tensor(levels, dtype=torch.float32) / 255
    return lv.view(-1, 1, 1, 1).expand(-1, 1, *noisy.shape[1:3]).contiguous()


def to_tensor(a: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(np.array(a)).permute(0, 3, 1, 2).float().div_(255)


def shrink(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    return np.asarray(Image.fromarray(a).resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS))


def val_images(files: list[Path]) -> list[np.ndarray]:
    out = []
    for f in files:
        a = shrink(load_rgb(f))
        out.append(np.ascontiguousarray(a[: a.shape[0] // 8 * 8, : a.shape[1] // 8 * 8]))
    return out


@torch.no_grad()
def validate(model: Denoiser, images: list[np.ndarray]) -> list[dict]:
    """Every fixed condition of training/degrade.py on the validation images, blind."""
    model.eval()
    rows = []
    for name, recipe in degrade.CONDITIONS.items():
        rng = np.random.default_rng(0)
        gain = total = 0.0
        for x in images:
            target, noisy = degrade.apply(x, recipe, rng)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(to_tensor(noisy[None]), sigma_maps(noisy[None], target[None], np.array([True])))
            den = np.clip(np.rint(out.float()[0].permute(1, 2, 0).numpy() * 255), 0, 255)
            p = psnr(den, target.astype(np.float32))
            total += p
            gain += p - psnr(noisy.astype(np.float32), target.astype(np.float32))
        rows.append({"condition": name, "psnr": round(total / len(images), 3), "gain": round(gain / len(images), 3)})
    model.train()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_arguments(ap, steps=200000, crop=64, threads=2, val_count=10, save_every=100, val_every=500, seed=1)
    ap.add_argument("--init", type=Path, help="start from these weights (training/weights/NAME.pt) if --ckpt is new")
    add_bf16_argument(ap)
    ap.add_argument("--blocks", default="2,2,4", help="residual blocks: encoder stage 1, stage 2, middle")
    ap.add_argument("--dec-blocks", default="2,1", help="residual blocks: decoder stage 2, stage 1")
    ap.add_argument("--white", type=float, default=0.3, help="share of plain white-noise crops")
    ap.add_argument("--loss", choices=["l1", "l2"], default="l1", help="l2 to finish on the metric PSNR measures")
    args = ap.parse_args(argv)
    args.bf16 = resolve_bf16(args)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    state = load_state(args.ckpt)
    src = state or (load_state(args.init) if args.init else None)
    config = {
        "blocks": [int(v) for v in args.blocks.split(",")],
        "dec_blocks": [int(v) for v in args.dec_blocks.split(",")],
    }
    if state and "config" in state:
        config = state["config"]
    model = Denoiser(**config).to(memory_format=torch.channels_last)
    step = 0
    if src:
        model.load_grown(src["model"])  # shipped weights are fp16 and may have fewer blocks
        step = src["step"]
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state:
        restore_optimizer(opt, state, [args.lr])
    train_files, val_files = split_files(list_images(args.data), args.val_count)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step, shrink=2)
    rng = np.random.default_rng(args.seed + step)
    val = val_images(val_files)
    print(f"denoiser: start step {step}, {len(sampler.images)} training images", flush=True)

    def train_step() -> float:
        clean = sampler.batch_uint8(args.batch)
        pairs = [degrade.apply(c, degrade.sample(rng, args.white), rng) for c in clean]
        target = np.stack([p[0] for p in pairs])
        noisy = np.stack([p[1] for p in pairs])
        maps = sigma_maps(noisy, target, rng.random(len(noisy)) < BLIND_SHARE)
        x = to_tensor(noisy).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(x, maps)
        err = out.float() - to_tensor(target)
        loss = torch.mean(torch.abs(err)) if args.loss == "l1" else torch.mean(err * err)
        value = optimise(opt, loss, model.parameters())
        return value * 255 if args.loss == "l1" else float(np.sqrt(value)) * 255  # L1 or RMSE, 0..255

    sched = schedule(args)
    sched.log_every = 100
    run(
        model,
        opt,
        args.ckpt,
        config,
        step,
        sched,
        train_step,
        (lambda: validate(model, val)) if val else None,
        lambda rows: " ".join(f"{r['condition']}:{r['psnr']:.2f}({r['gain']:+.2f})" for r in rows),
    )


if __name__ == "__main__":
    main()
