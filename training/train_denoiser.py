"""Train the blind denoiser: python -m training.train_denoiser --data DIR --ckpt FILE.

Clean crops get white Gaussian noise with sigma drawn uniformly from [0, --sigma-max] on the 0-255
scale, then are rounded and clipped to 8 bits, as a user's noisy PNG is. The network is steered by
a noise-level map: half the time the true sigma, half the time the runtime's blind estimate of it
(aecompress.noise_level), so that both `--sigma N` and `--sigma auto` are in distribution.
Resumable like train_postfilter.
"""

from __future__ import annotations

import argparse
import random

import torch

from aecompress.images import psnr
from aecompress.noise_level import estimate_sigma
from training.checkpoints import load_state, restore_optimizer, split_files, val_tensors
from training.data import CropSampler, list_images
from training.loop import add_arguments, run, schedule
from training.nets import Denoiser

VAL_SIGMAS = (15, 25, 50)


def add_noise(clean: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
    """clean (B, 3, H, W) in [0, 1], sigma (B,) on 0..255 -> 8-bit noisy image in [0, 1]."""
    noise = torch.randn(clean.shape, generator=gen) * sigma.view(-1, 1, 1, 1)
    return torch.clamp(torch.round(clean * 255 + noise), 0, 255) / 255


def sigma_maps(noisy: torch.Tensor, sigma: torch.Tensor, blind: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) maps of sigma/255: the true level, or where blind is set, its estimate."""
    levels = sigma.clone()
    for i in torch.nonzero(blind).flatten().tolist():
        levels[i] = estimate_sigma((noisy[i].permute(1, 2, 0) * 255).numpy())
    return (levels / 255).view(-1, 1, 1, 1).expand(-1, 1, *noisy.shape[2:]).contiguous()


@torch.no_grad()
def validate(model: Denoiser, images: list[torch.Tensor]) -> list[dict]:
    model.eval()
    rows = []
    gen = torch.Generator().manual_seed(0)
    for s in VAL_SIGMAS:
        total = 0.0
        for x in images:
            noisy = add_noise(x, torch.tensor([float(s)]), gen)
            out = model(noisy, sigma_maps(noisy, torch.tensor([float(s)]), torch.tensor([True])))
            total += psnr(torch.round(out.clamp(0, 1) * 255).numpy(), torch.round(x * 255).numpy())
        rows.append({"sigma": s, "psnr": round(total / len(images), 3)})
    model.train()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_arguments(ap, steps=200000, crop=64, threads=1, val_count=6, save_every=200, seed=1)
    ap.add_argument("--sigma-max", type=float, default=55.0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    state = load_state(args.ckpt)
    model = Denoiser()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if state:
        model.load_state_dict(state["model"])
        restore_optimizer(opt, state, [args.lr])
        step = state["step"]
    train_files, val_files = split_files(list_images(args.data), args.val_count)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    val_images = val_tensors(val_files, 8)
    print(f"denoiser: start step {step}, {len(sampler.images)} training images", flush=True)

    def train_step() -> float:
        clean = sampler.batch(args.batch)
        sigma = torch.rand(args.batch) * args.sigma_max
        noisy = add_noise(clean, sigma)
        out = model(noisy, sigma_maps(noisy, sigma, torch.rand(args.batch) < 0.5))
        loss = torch.mean(torch.abs(out - clean))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item() * 255  # L1 on the 0..255 scale

    sched = schedule(args)
    sched.log_every = 100
    run(
        model,
        opt,
        args.ckpt,
        None,
        step,
        sched,
        train_step,
        (lambda: validate(model, val_images)) if val_images else None,
        lambda rows: " ".join(f"s{r['sigma']}:{r['psnr']:.2f}" for r in rows),
    )


if __name__ == "__main__":
    main()
