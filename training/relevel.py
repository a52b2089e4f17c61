"""Move a trained codec to new quality levels: python -m training.relevel IN.pt OUT.pt --lambda-min ...

The transforms are shared by every level, so a new set of lambdas needs only new gains and priors.
Each new level's gains are interpolated per channel in log(lambda) from the trained levels
(extrapolated linearly beyond them), and its prior is the nearest trained level's, rescaled
exactly for the changed gain: a density f(y) of latents that are scaled by s becomes f(y / s),
which is a scaling of the prior's first matrix. Training then only fine-tunes instead of learning
the new levels from nothing.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.checkpoints import load_state, save_atomic
from training.codec_model import CodecConfig, GainedFactorizedCodec, default_lambdas


def _softplus_inv(v: torch.Tensor) -> torch.Tensor:
    return v + torch.log(-torch.expm1(-v))


def _interp(old_x: np.ndarray, table: torch.Tensor, x: float) -> torch.Tensor:
    """Piecewise-linear in x per column of table (levels, channels), linear beyond the ends."""
    i = int(np.clip(np.searchsorted(old_x, x) - 1, 0, len(old_x) - 2))
    t = (x - old_x[i]) / (old_x[i + 1] - old_x[i])
    return table[i] + t * (table[i + 1] - table[i])


@torch.no_grad()
def relevel(state: dict, lambdas: list[float]) -> dict:
    old_cfg = CodecConfig(**state["config"])
    old = GainedFactorizedCodec(old_cfg)
    old.load_state_dict(state["model"])
    cfg = CodecConfig(n=old_cfg.n, m=old_cfg.m, arch=old_cfg.arch, lambdas=lambdas)
    new = GainedFactorizedCodec(cfg)
    keep = {k: v for k, v in state["model"].items() if k.startswith(("g_a.", "g_s."))}
    new.load_state_dict(keep, strict=False)
    old_x = np.log(np.array(old_cfg.lambdas))
    m = cfg.m
    for j, lam in enumerate(lambdas):
        x = math.log(lam)
        new.log_gain[j] = _interp(old_x, old.log_gain.data, x)
        new.log_igain[j] = _interp(old_x, old.log_igain.data, x)
        near = int(np.argmin(np.abs(old_x - x)))
        src, dst = slice(near * m, (near + 1) * m), slice(j * m, (j + 1) * m)
        for plist_new, plist_old in (
            (new.prior.matrices, old.prior.matrices),
            (new.prior.biases, old.prior.biases),
            (new.prior.factors, old.prior.factors),
        ):
            for p_new, p_old in zip(plist_new, plist_old, strict=True):
                p_new[dst] = p_old[src]
        scale = (new.log_gain[j] - old.log_gain[near]).exp()  # (m,): new latents = scale * old ones
        first = new.prior.matrices[0]
        first[dst] = _softplus_inv(F.softplus(first[dst]) / scale[:, None, None])
    return {"config": cfg.to_dict(), "model": new.state_dict(), "step": state.get("step", 0)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--lambda-min", type=float, required=True)
    ap.add_argument("--lambda-max", type=float, required=True)
    args = ap.parse_args(argv)
    lambdas = default_lambdas(args.levels, args.lambda_min, args.lambda_max)
    save_atomic(relevel(load_state(args.src), lambdas), args.dst)
    print("lambdas " + " ".join(f"{v:.5f}" for v in lambdas))


if __name__ == "__main__":
    main()
