"""Shared by the training commands: held-out split, atomic checkpoints, validation images, logs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from training.data import load_rgb


def split_files(files: list[Path], val_count: int) -> tuple[list[Path], list[Path]]:
    """Hold out every k-th file for validation, deterministically."""
    if val_count <= 0 or len(files) <= val_count:
        return files, []
    step = len(files) // val_count
    val = files[::step][:val_count]
    return [f for f in files if f not in val], val


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


def restore_optimizer(opt: torch.optim.Optimizer, state: dict, lrs: list[float]) -> None:
    """Resume the optimizer where its layout matches, then apply this run's learning rates."""
    saved = state.get("optimizer")
    if saved and len(saved["param_groups"]) == len(opt.param_groups):
        opt.load_state_dict(saved)
    else:
        # Shipped weights (training/weights/) carry no optimizer state; a resumed run rebuilds it.
        print("no matching optimizer state: starting it afresh", flush=True)
    for group, lr in zip(opt.param_groups, lrs, strict=True):
        group["lr"] = lr


def val_tensors(files: list[Path], multiple: int) -> list[torch.Tensor]:
    """Validation images as (1, 3, H, W) in [0, 1], cropped to a multiple of the model's stride."""
    out = []
    for f in files:
        a = np.ascontiguousarray(load_rgb(f))
        h, w = a.shape[0] // multiple * multiple, a.shape[1] // multiple * multiple
        out.append(torch.from_numpy(a[:h, :w]).permute(2, 0, 1)[None].float() / 255)
    return out


def log_val(ckpt: Path, step: int, rows: list[dict]) -> None:
    with open(ckpt.with_suffix(".log.jsonl"), "a") as fh:
        fh.write(json.dumps({"step": step, "time": time.time(), "val": rows}) + "\n")
