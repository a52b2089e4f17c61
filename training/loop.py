"""The one training loop both trainers share: wall-clock learning-rate schedule, logging,
atomic checkpoints, validation.

On this CPU the budget is minutes, not steps: with --minutes and --lr-final the learning rate
decays along a cosine over the run's wall time (decaying late was worth 0.4 to 1.4 dB in earlier
runs). A checkpoint holds the model, the optimizer, the step and the model's config; it is
written atomically every save_every steps and at the end, so a killed run loses at most that.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from training.checkpoints import log_val, save_atomic


@dataclass
class Schedule:
    steps: int  # stop at this step (absolute, so a resumed run continues the count)
    minutes: float = 0.0  # stop after this much wall time (0: no limit)
    lr: float = 1e-3
    lr_final: float = 1.0  # fraction of lr reached at the end of --minutes (1: constant)
    save_every: int = 100
    val_every: int = 1000
    log_every: int = 50


def native_bf16(device: str = "cpu") -> bool:
    """Whether bf16 autocast pays here: on a GPU, or on a CPU with AVX-512 BF16 or AMX. Elsewhere
    (an AVX2-only machine) it is emulated and several times slower than float32."""
    if device != "cpu":
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def add_bf16_argument(ap) -> None:
    ap.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast (default: where the hardware computes bf16 natively)",
    )


def resolve_bf16(args, device: str = "cpu") -> bool:
    bf16 = native_bf16(device) if args.bf16 is None else args.bf16
    print(f"bf16 autocast: {'on' if bf16 else 'off'}", flush=True)
    return bf16


def add_arguments(ap, **defaults) -> None:
    """The options every trainer takes (data, checkpoint, budget, schedule, validation); defaults
    for any of them by their dest names, e.g. add_arguments(ap, lr=1e-3, crop=64)."""
    d = {
        "steps": 10**9,
        "batch": 16,
        "crop": 128,
        "lr": 1e-3,
        "lr_final": 1.0,
        "threads": 2,
        "val_count": 30,
        "val_every": 1000,
        "save_every": 100,
        "seed": 0,
        **defaults,
    }
    ap.add_argument("--data", required=True, help="folder of training images")
    ap.add_argument("--ckpt", type=Path, required=True, help="checkpoint, resumed if it exists")
    ap.add_argument("--steps", type=int, default=d["steps"], help="stop at this step (absolute)")
    ap.add_argument("--minutes", type=float, default=0.0, help="wall-clock budget (0: no limit)")
    ap.add_argument("--batch", type=int, default=d["batch"])
    ap.add_argument("--crop", type=int, default=d["crop"])
    ap.add_argument("--lr", type=float, default=d["lr"])
    ap.add_argument("--lr-final", type=float, default=d["lr_final"], help="fraction of --lr at the end of --minutes")
    ap.add_argument("--threads", type=int, default=d["threads"])
    ap.add_argument("--val-count", type=int, default=d["val_count"], help="training images held out for validation")
    ap.add_argument("--val-every", type=int, default=d["val_every"])
    ap.add_argument("--save-every", type=int, default=d["save_every"])
    ap.add_argument("--seed", type=int, default=d["seed"])


def schedule(args) -> Schedule:
    return Schedule(args.steps, args.minutes, args.lr, args.lr_final, args.save_every, args.val_every)


def lr_factor(start: float, minutes: float, final: float) -> float:
    if not minutes or final >= 1.0:
        return 1.0
    frac = min(1.0, (time.time() - start) / (minutes * 60))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * frac))


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float = 1.0) -> float:
    """One optimizer step on loss, gradients clipped to norm clip; skipped when the loss is not
    finite (one bad batch must not wreck a long run). -> the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    value = loss.item()
    if math.isfinite(value):
        opt.step()
    return value


def run(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    ckpt: Path,
    config: dict | None,
    step: int,
    sched: Schedule,
    train_step: Callable[[], float],
    validate: Callable[[], list[dict]] | None = None,
    describe_val: Callable[[list[dict]], str] = str,
) -> int:
    """Call train_step (one optimizer step, returning its loss) until the schedule ends; returns
    the last step."""
    t0 = time.time()
    window: list[float] = []
    while step < sched.steps:
        for g in opt.param_groups:
            g["lr"] = sched.lr * lr_factor(t0, sched.minutes, sched.lr_final)
        window.append(train_step())
        step += 1
        if step % sched.log_every == 0:
            mean = sum(window) / len(window)
            lr = opt.param_groups[0]["lr"]
            print(f"step {step} loss {mean:.5f} lr {lr:.1e} ({(time.time() - t0) / 60:.1f} min)", flush=True)
            window.clear()
        done = step >= sched.steps or bool(sched.minutes and time.time() - t0 > sched.minutes * 60)
        if step % sched.save_every == 0 or done:
            sd = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            state = {"model": sd, "optimizer": opt.state_dict(), "step": step}
            if config is not None:
                state["config"] = config
            save_atomic(state, ckpt)
        if validate is not None and (step % sched.val_every == 0 or done):
            rows = validate()
            log_val(ckpt, step, rows)
            print("val " + describe_val(rows), flush=True)
        if done:
            break
    return step
