"""Train the variable-rate codec: python -m training.train_codec --data DIR --ckpt FILE.

Resumable: if FILE exists, training continues from it (model, optimiser, step). Loss per image is
lambda * 255^2 * MSE + bits per pixel, each image in a batch at a randomly drawn level.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time
from pathlib import Path

import torch

from training.checkpoints import load_state, log_val, restore_optimizer, save_atomic, split_files, val_tensors
from training.codec_model import CodecConfig, GainedFactorizedCodec, default_lambdas
from training.data import CropSampler, list_images
from training.nets import init_block_transforms


def validate(model: GainedFactorizedCodec, val_images: list[torch.Tensor]) -> list[dict]:
    model.eval()
    rows = []
    for level in range(model.cfg.levels):
        bpp = psnr = 0.0
        for x in val_images:
            b, p = model.evaluate(x, level)
            bpp += b / len(val_images)
            psnr += p / len(val_images)
        rows.append({"level": level + 1, "bpp": round(bpp, 4), "psnr": round(psnr, 3)})
    model.train()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="folder of training images")
    ap.add_argument("--ckpt", required=True, type=Path, help="checkpoint file (resumed if present)")
    ap.add_argument("--steps", type=int, default=100000, help="stop at this global step")
    ap.add_argument("--minutes", type=float, default=0, help="also stop after this long (0: no limit)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-entropy", type=float, default=1e-2, help="learning rate of prior and gains")
    ap.add_argument(
        "--lr-final",
        type=float,
        default=0,
        help="with --minutes: cosine decay of both rates to "
        "this fraction of their start over the run's wall time (0: constant)",
    )
    ap.add_argument("--init-from", type=Path, help="start the transforms from another checkpoint's")
    ap.add_argument("--arch", choices=["balle", "unshuffle", "block"], default="balle")
    ap.add_argument("--klt-scale", type=float, default=10.0, help="block arch: initial step is 1/scale")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--m", type=int, default=192)
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--lambda-min", type=float, default=0.0018)
    ap.add_argument("--lambda-max", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val-count", type=int, default=6)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("--save-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)

    state = load_state(args.ckpt)
    if state:
        cfg = CodecConfig(**state["config"])
    else:
        lambdas = default_lambdas(args.levels, args.lambda_min, args.lambda_max)
        cfg = CodecConfig(n=args.n, m=args.m, arch=args.arch, lambdas=lambdas)
    model = GainedFactorizedCodec(cfg)
    # The prior and the level gains are few, well-conditioned parameters that decide the rate: at
    # the transforms' learning rate they take thousands of steps to move, so they get their own.
    fast = [p for n, p in model.named_parameters() if n.startswith(("prior.", "log_gain", "log_igain"))]
    slow = [p for n, p in model.named_parameters() if not n.startswith(("prior.", "log_gain", "log_igain"))]
    opt = torch.optim.Adam([{"params": slow, "lr": args.lr}, {"params": fast, "lr": args.lr_entropy}])
    step = 0
    if state:
        model.load_state_dict(state["model"])
        restore_optimizer(opt, state, [args.lr, args.lr_entropy])
        step = state["step"]
    elif args.init_from:
        # Warm start: the transforms of a neighbouring model (another rate or level count) are a far
        # better start than random weights; gains and priors start fresh.
        src = load_state(args.init_from)["model"]
        keep = {k: v for k, v in src.items() if k.startswith(("g_a.", "g_s."))}
        model.load_state_dict(keep, strict=False)
        print(f"transforms from {args.init_from} ({len(keep)} tensors)", flush=True)

    train_files, val_files = split_files(list_images(args.data), args.val_count)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    if cfg.arch == "block" and not state and not args.init_from:
        patches = torch.cat([sampler.batch(256)[:, :, :16, :16] for _ in range(40)])
        init_block_transforms(model.g_a, model.g_s, patches, args.klt_scale)
        print(f"block transforms set to the KLT of {len(patches)} patches", flush=True)
    val_images = val_tensors(val_files, 16)
    lambdas = torch.tensor(cfg.lambdas)
    print(f"config {cfg.to_dict()} start step {step}, {len(sampler.images)} training images", flush=True)

    t0 = time.time()
    window = []
    ema = torch.full((cfg.levels,), float("inf"))
    skipped = streak = 0
    # Wall-clock schedule: on this CPU the budget is minutes, not steps, and decaying the rate
    # late was worth 0.4 to 1.4 dB in earlier runs. A rollback lowers it for the rest of the run.
    base_lrs = [args.lr, args.lr_entropy]
    penalty = 1.0
    good: tuple[dict, dict, int] | None = None
    while step < args.steps:
        frac = min(1.0, (time.time() - t0) / (args.minutes * 60)) if args.minutes and args.lr_final else 0.0
        decay = args.lr_final + (1 - args.lr_final) * 0.5 * (1 + math.cos(math.pi * frac)) if frac else 1.0
        for group, lr in zip(opt.param_groups, base_lrs, strict=True):
            group["lr"] = lr * decay * penalty
        x = sampler.batch(args.batch)
        level = torch.randint(0, cfg.levels, (args.batch,))
        x_hat, lik = model(x, level)
        mse = torch.mean((x_hat - x) ** 2, dim=(1, 2, 3))
        bpp = -torch.log2(lik).sum(dim=(1, 2, 3)) / (x.shape[2] * x.shape[3])
        per_image = lambdas[level] * 255**2 * mse + bpp
        loss = torch.mean(per_image)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        # A batch whose loss jumps far above each level's recent average is skipped; if that
        # keeps happening the model has been knocked off course, and it is rolled back to the last
        # healthy snapshot with a lower learning rate. Levels differ in loss scale by orders of
        # magnitude, so each is compared with its own history (0 until it has one).
        per_image = per_image.detach()
        ratio = torch.mean(per_image / ema[level]).item()
        if not math.isfinite(loss.item()) or ratio > 3:
            skipped += 1
            streak += 1
            if streak >= 5 and good is not None:
                model.load_state_dict(good[0])
                opt.load_state_dict(good[1])
                penalty *= 0.7
                ema[:] = float("inf")
                streak = 0
                print(f"step {step}: rolled back to step {good[2]}, lr now {opt.param_groups[0]['lr']:.2e}", flush=True)
        else:
            streak = 0
            opt.step()
            for lv, v in zip(level.tolist(), per_image.tolist(), strict=True):
                ema[lv] = v if not math.isfinite(ema[lv]) else 0.98 * ema[lv] + 0.02 * v
        step += 1
        window.append((loss.item(), bpp.mean().item(), mse.mean().item()))
        if step % 50 == 0:
            n = len(window)
            lo, b, m = (sum(v[i] for v in window) / n for i in range(3))
            psnr = 10 * math.log10(1 / max(m, 1e-10))
            el = time.time() - t0
            lr = opt.param_groups[0]["lr"]
            msg = f"step {step} loss {lo:.4f} bpp {b:.4f} psnr {psnr:.2f} lr {lr:.1e} skipped {skipped}"
            print(f"{msg} ({el / 60:.1f} min)", flush=True)
            window.clear()
        done = step >= args.steps or (args.minutes and time.time() - t0 > args.minutes * 60)
        if (step % args.save_every == 0 or done) and streak == 0:
            good = (copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict()), step)
            save_atomic({"config": cfg.to_dict(), "model": good[0], "optimizer": good[1], "step": step}, args.ckpt)
        if val_images and (step % args.val_every == 0 or done):
            rows = validate(model, val_images)
            log_val(args.ckpt, step, rows)
            print("val " + " ".join(f"{r['bpp']:.3f}/{r['psnr']:.2f}" for r in rows), flush=True)
        if done:
            break


if __name__ == "__main__":
    main()
