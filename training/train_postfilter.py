"""Train the codec's post-filter: python -m training.train_postfilter --data DIR --ckpt FILE.

The wavelet transform, quantiser and entropy coder are fixed (aecompress.wavelet, quantise), so
the post-filter learns from exactly what the runtime decoder produces: each training crop goes
through the runtime's own round trip at a base step drawn log-uniformly over the levels' range
(and a little beyond), and the filter learns to map that reconstruction back to the original.
No rate term: the filter cannot change the file, only what the decoder makes of it.

bf16 autocast where the hardware computes bf16 (AVX-512 BF16 or AMX, or a GPU: about twice as
fast as float32; on an AVX2-only CPU it is emulated and far slower, so float32 is the default
there), channels_last; the loss is computed in float32. Resumable: the checkpoint is written atomically every
--save-every steps; --minutes with --lr-final decays the learning rate over the run's wall time.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
import torch
from pytorch_msssim import ms_ssim

from aecompress import codec, images
from aecompress.entropy import ContextTables
from training import rd
from training.checkpoints import load_state, log_val, restore_optimizer, split_files
from training.data import CropSampler, list_images, load_rgb
from training.lifting import AsTransform
from training.loop import add_arguments, add_bf16_argument, optimise, resolve_bf16, run, schedule
from training.nets import PostFilter

STEP_MIN, STEP_MAX = 2.0, 192.0
MSSSIM_MSE_WEIGHT = 0.1
VAL_STEPS = (128.0, 45.25, 16.0, 5.657)


def degrade(
    x: np.ndarray, steps: np.ndarray, tables: ContextTables | None = None, transform: AsTransform | None = None
) -> np.ndarray:
    """(B, 3, H, W) uint8 -> the runtime's float reconstruction on 0..255 at each crop's step;
    with tables, steps must be their levels' and the encoder's rate-distortion choices apply;
    transform: a learned wavelet instead of the fixed one."""
    out = np.empty(x.shape, dtype=np.float32)
    for i in range(len(x)):
        level = int(np.argmin(np.abs(tables.steps - steps[i]))) if tables is not None else 0
        out[i], _ = codec.roundtrip(x[i], float(steps[i]), tables, level, wavelet_transform=transform)
    return out


_worker_tables: ContextTables | None = None
_worker_transform: AsTransform | None = None


def _init_worker(tables: ContextTables | None, transform: AsTransform | None) -> None:
    global _worker_tables, _worker_transform
    _worker_tables, _worker_transform = tables, transform
    torch.set_num_threads(1)


def _degrade_one(x: np.ndarray, step: float) -> np.ndarray:
    return degrade(x[None], np.array([step]), _worker_tables, _worker_transform)[0]


def load_tables(arg: Path | None) -> ContextTables | None:
    if arg is not None and str(arg) == "none":
        return None
    if arg is not None:
        return ContextTables.load(arg)
    from aecompress import models

    try:
        return ContextTables.load(models.get().path("tables"))
    except (models.ModelError, ValueError):
        return None


def val_images(files: list[Path], size: int = 256) -> list[np.ndarray]:
    out = []
    for f in files:
        a = load_rgb(f)
        h, w = a.shape[:2]
        y, x = (h - min(h, size)) // 2 // 2 * 2, (w - min(w, size)) // 2 // 2 * 2
        c = a[y : y + size, x : x + size]
        c = c[: c.shape[0] // 2 * 2, : c.shape[1] // 2 * 2]
        out.append(np.ascontiguousarray(c.transpose(2, 0, 1)))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Of a float reconstruction as the decoder delivers it: rounded and clipped to 8 bits."""
    return images.psnr(np.clip(np.rint(a), 0, 255), b)


def ssim_db(a: np.ndarray, b: np.ndarray) -> float:
    """-10 log10(1 - MS-SSIM) of a float reconstruction (3, H, W), rounded as the decoder delivers it."""
    return rd.ssim_db(rd.ms_ssim(np.clip(np.rint(a), 0, 255).transpose(1, 2, 0), b.transpose(1, 2, 0)))


@torch.no_grad()
def validate(
    model: PostFilter,
    images: list[np.ndarray],
    dev: torch.device | None = None,
    tables: ContextTables | None = None,
    metric: str = "mse",
    transform: AsTransform | None = None,
) -> list[dict]:
    """Per validation step: PSNR (mse) or MS-SSIM in dB (msssim) after the filter and its gain."""
    model.eval()
    rows = []
    measure, key = (psnr, "psnr") if metric == "mse" else (ssim_db, "msssim_db")
    steps = VAL_STEPS if tables is None else tables.steps[[1, 4, 7, 10]]
    for s in steps:
        before = after = 0.0
        for im in images:
            rec = degrade(im[None], np.array([s]), tables, transform)
            out = model(torch.from_numpy(rec / 255).to(dev), torch.tensor([s], device=dev)).cpu().numpy() * 255
            before += measure(rec[0], im)
            after += measure(out[0], im)
        rows.append({"step": s, key: round(after / len(images), 3), "gain": round((after - before) / len(images), 3)})
    model.train()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_arguments(ap, lr=5e-4, lr_final=0.05, val_every=500)
    ap.add_argument("--lifting", type=Path, help="a learned wavelet (training.train_lifting checkpoint) to filter")
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--blocks", type=int, default=2)
    add_bf16_argument(ap)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--workers", type=int, default=0, help="processes making the inputs (a GPU outruns one)")
    ap.add_argument(
        "--tables",
        type=Path,
        help="context tables: train at their levels' steps on the encoder's rate-distortion choices "
        "(default: the shipped codec's; 'none': continuous steps, plain dead-zone quantiser)",
    )
    ap.add_argument(
        "--init", type=Path, help="start from these weights (e.g. training/weights/NAME.pt) if --ckpt is new"
    )
    ap.add_argument(
        "--metric",
        choices=["mse", "msssim"],
        default="mse",
        help="msssim: 1 - MS-SSIM (5 scales, crops of at least 176) plus MSSSIM_MSE_WEIGHT of the MSE loss",
    )
    args = ap.parse_args(argv)
    if args.metric == "msssim" and args.crop < 176:
        ap.error("--metric msssim needs --crop 176 or more (five scales of an 11-tap window)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    state = load_state(args.ckpt)
    init = load_state(args.init) if args.init and not state else None
    src = state or init
    cfg = src["config"] if src else {"width": args.width, "blocks": args.blocks}
    dev = torch.device(args.device)
    args.bf16 = resolve_bf16(args, dev.type)
    model = PostFilter(**cfg).to(dev, memory_format=torch.channels_last)
    step = 0
    if src:
        # shipped weights are fp16
        model.load_state_dict({k: v.float() for k, v in src["model"].items()})
        step = src["step"]
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    if state:
        restore_optimizer(opt, state, [args.lr])
    train_files, val_files = split_files(list_images(args.data), args.val_count)
    sampler = CropSampler(train_files, args.crop, seed=args.seed + step)
    val = val_images(val_files)
    rng = np.random.default_rng(args.seed + step)
    tables = load_tables(args.tables)
    transform = AsTransform.load(args.lifting) if args.lifting else None
    print(f"config {cfg} start step {step}, {len(sampler.images)} training images", flush=True)
    if step == 0 and val:
        log_val(args.ckpt, 0, validate(model, val, dev, tables, args.metric, transform))

    pool = None
    if args.workers > 0:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(args.workers, _init_worker, (tables, transform))

    def train_step() -> float:
        x = (sampler.batch(args.batch) * 255).round().to(torch.uint8).numpy()
        if tables is not None:
            steps = tables.steps[rng.integers(0, tables.levels, len(x))]
        else:
            steps = np.exp(rng.uniform(math.log(STEP_MIN), math.log(STEP_MAX), len(x)))
        if pool:
            made = np.stack(pool.starmap(_degrade_one, zip(x, steps, strict=True)))
        else:
            made = degrade(x, steps, tables, transform)
        rec = torch.from_numpy(made / 255).to(dev).contiguous(memory_format=torch.channels_last)
        target = torch.from_numpy(x).to(dev).float() / 255
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            out = model(rec, torch.from_numpy(steps).float().to(dev))
        # Each crop's error relative to its input's: every level counts alike, not only the
        # coarse ones whose errors are largest. The loss is float32.
        err = torch.mean((out.float() - target) ** 2, dim=(1, 2, 3))
        base = torch.mean((rec - target) ** 2, dim=(1, 2, 3)).clamp_min(1e-8)
        loss = torch.mean(err / base)
        if args.metric == "msssim":
            # 1 - MS-SSIM relative to the unfiltered crop's, like the MSE term; a little MSE keeps
            # flat areas' levels and colours, which MS-SSIM barely sees, from drifting.
            out_s = ms_ssim(out.float().clamp(0, 1), target, data_range=1.0, size_average=False)
            rec_s = ms_ssim(rec.float(), target, data_range=1.0, size_average=False)
            loss = torch.mean((1 - out_s) / (1 - rec_s).clamp_min(1e-6)) + MSSSIM_MSE_WEIGHT * loss
        return optimise(opt, loss, model.parameters())  # below 1: better than the unfiltered reconstruction

    sched = schedule(args)
    run(
        model,
        opt,
        args.ckpt,
        cfg,
        step,
        sched,
        train_step,
        (lambda: validate(model, val, dev, tables, args.metric, transform)) if val else None,
        lambda rows: " ".join(f"{r['step']:g}:{r.get('psnr', r.get('msssim_db')):.2f}({r['gain']:+.3f})" for r in rows),
    )
    if pool:
        pool.close()


if __name__ == "__main__":
    main()
