"""The one training loop both trainers share: wall-clock learning-rate schedule, logging,
atomic checkpoints, validation.

On this CPU the budget is minutes, not steps: with --minutes and --lr-final the learning rate
decays along a cosine over the run's wall time (decaying late was worth 0.4 to 1.4 dB in earlier
runs). A checkpoint holds the model, the optimizer, the step and the model's config; it is
written atomically every save_every steps and at the end, so a killed run loses at most that.
"""

from __future__ import annotations

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


def lr_factor(start: float, minutes: float, final: float) -> float:
    if not minutes or final >= 1.0:
        return 1.0
    frac = min(1.0, (time.time() - start) / (minutes * 60))
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * frac))


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
