"""Fit the runtime's integer context tables (aecompress.entropy.ContextTables) to training images.

Three steps, each over the wavelet subbands that the runtime's own quantiser makes of the images
at every quality level:
1. activity weights per (band class, pass): non-negative least squares of a coefficient's capped
   magnitude on its context features, scaled to small integers;
2. thresholds per (level, class, pass): the zero activity alone, then quantiles of the positive
   activities;
3. counts per (level, class, pass, bucket): the symbols' histogram, smoothed towards the class's
   pooled histogram where a bucket has few samples, scaled to 15-bit integers (none zero).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from aecompress import codec, entropy, wavelet
from aecompress.entropy import BUCKETS, CLASSES, FEATURES, MAX_WEIGHT, PASSES, SIGN_CONTEXTS, SYMBOLS, ContextTables
from training.checkpoints import split_files
from training.data import list_images, load_rgb
from training.lifting import AsTransform

WEIGHT_SCALE = MAX_WEIGHT  # the largest weight the coder accepts
COUNT_TOTAL = 1 << 15
SMOOTHING = 16.0  # pseudo-samples of the pooled histogram added to every bucket's
MAX_SAMPLES = 400_000  # per (class, pass) for the weight fit
SUBSAMPLE_ABOVE = 20_000  # coefficients of one band pass


def subbands(
    rgb: np.ndarray,
    step: float,
    tables: ContextTables | None = None,
    level: int = 0,
    scale: np.ndarray | None = None,
    transform=None,
) -> tuple[list, int]:
    """(3, H, W) uint8 -> integer subbands per channel at a base step (band steps scaled by scale,
    quantise.SCALE_SHAPE), and the level count; with tables, as the encoder chooses them with
    those tables (rate-distortion choices); transform: a learned wavelet (codec.roundtrip's)."""
    _, ints = codec.roundtrip(rgb, step, tables, level, scale, transform)
    return ints, wavelet.levels_for(*rgb.shape[1:])


def fit_weights(
    images: list[np.ndarray],
    steps: np.ndarray,
    rng: np.random.Generator,
    prior: ContextTables | None,
    scale: np.ndarray | None = None,
    transform=None,
) -> np.ndarray:
    feats: dict = defaultdict(list)
    syms: dict = defaultdict(list)
    for rgb in images:
        for lv, step in enumerate(steps):
            ints, levels = subbands(rgb, float(step), prior, lv, scale, transform)
            for cls, p, f, s, _ in entropy.analyse(ints, levels):
                keep = rng.random(s.size) < 0.25
                feats[cls, p].append(f[:, keep])
                syms[cls, p].append(s[keep])
    weights = np.zeros((CLASSES, PASSES, len(FEATURES)), dtype=np.int64)
    for (cls, p), fl in feats.items():
        f = np.concatenate(fl, axis=1).astype(np.float64)
        s = np.concatenate(syms[cls, p]).astype(np.float64)
        if s.size > MAX_SAMPLES:
            pick = rng.choice(s.size, MAX_SAMPLES, replace=False)
            f, s = f[:, pick], s[pick]
        if s.size == 0 or not f.any():
            weights[cls, p, :] = 1
            continue
        w, _ = nnls(f.T, s)
        if p == 0:
            w[-1] = 0
        top = w.max()
        weights[cls, p] = np.rint(w / top * WEIGHT_SCALE) if top > 0 else 1
    return weights


def fit_tables(
    images: list[np.ndarray],
    steps: np.ndarray,
    weight_images: int = 24,
    seed: int = 0,
    prior: ContextTables | None = None,
    scale: np.ndarray | None = None,
    transform=None,
) -> ContextTables:
    """images: (3, H, W) uint8 arrays; steps: the quality levels' base steps, coarsest first.
    prior: tables with which the encoder makes its rate-distortion choices, so that the new
    tables fit what the encoder will really code (None: the plain dead-zone quantiser). scale:
    the band step factors the tables are for (stored in them). transform: a learned wavelet
    (training.lifting.AsTransform) whose bands the tables are for."""
    rng = np.random.default_rng(seed)
    weights = fit_weights(images[:weight_images], steps, rng, prior, scale, transform)
    n = len(steps)
    acts: dict = defaultdict(list)
    syms: dict = defaultdict(list)
    signs = np.zeros((2, 3, PASSES, SIGN_CONTEXTS, 2))
    for rgb in images:
        for lv, step in enumerate(steps):
            ints, levels = subbands(rgb, float(step), prior, lv, scale, transform)
            for cls, p, f, s, (c, o, sctx, neg) in entropy.analyse(ints, levels):
                np.add.at(signs, (int(c > 0), o, p, sctx, neg.astype(np.int64)), 1.0)
                act = entropy.activity(weights[cls, p], f[:-1], f[-1] if p else None)
                if s.size > SUBSAMPLE_ABOVE:  # an unbiased quarter of the large bands bounds memory
                    keep = rng.random(s.size) < 0.25
                    act, s = act[keep], s[keep]
                acts[lv, cls, p].append(act.astype(np.int32))
                syms[lv, cls, p].append(s)
    thresholds = np.zeros((n, CLASSES, PASSES, BUCKETS - 1), dtype=np.int64)
    counts = np.ones((n, CLASSES, PASSES, BUCKETS, SYMBOLS), dtype=np.uint16)
    for lv in range(n):
        for cls in range(CLASSES):
            for p in range(PASSES):
                a = np.concatenate(acts.get((lv, cls, p), [np.zeros(0, np.int32)])).astype(np.int64)
                s = np.concatenate(syms.get((lv, cls, p), [np.zeros(0, np.uint8)]))
                thresholds[lv, cls, p] = _thresholds(a)
                counts[lv, cls, p] = _counts(a, s, thresholds[lv, cls, p])
    return ContextTables(
        steps=np.asarray(steps, np.float64),
        weights=weights,
        thresholds=thresholds,
        counts=counts,
        signs=sign_counts(signs),
        band_scale=None if scale is None else np.asarray(scale, np.float64),
    )


def sign_counts(hist: np.ndarray) -> np.ndarray:
    p = (hist + 1.0) / (hist.sum(axis=-1, keepdims=True) + 2.0)
    return np.maximum(1, np.rint(p * COUNT_TOTAL)).astype(np.uint16)


def _thresholds(a: np.ndarray) -> np.ndarray:
    pos = a[a > 0]
    t = np.ones(BUCKETS - 1, dtype=np.int64)
    if pos.size:
        q = np.quantile(pos, np.arange(1, BUCKETS - 1) / (BUCKETS - 1), method="higher")
        t[1:] = np.maximum.accumulate(np.maximum(np.ceil(q).astype(np.int64), 2))
    return t


def _counts(a: np.ndarray, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    b = np.searchsorted(t, a, side="right")
    hist = np.zeros((BUCKETS, SYMBOLS), dtype=np.float64)
    np.add.at(hist, (b, s.astype(np.int64)), 1.0)
    pooled = hist.sum(axis=0) + 0.5
    pooled /= pooled.sum()
    p = (hist + SMOOTHING * pooled) / (hist.sum(axis=1, keepdims=True) + SMOOTHING)
    return np.maximum(1, np.rint(p * COUNT_TOTAL)).astype(np.uint16)


def fit_iterated(images: list[np.ndarray], steps: np.ndarray, rounds: int = 2, **kw) -> ContextTables:
    """Tables for the plain quantiser, then refitted to the choices the encoder makes with them."""
    tables = fit_tables(images, steps, **kw)
    for _ in range(rounds - 1):
        tables = fit_tables(images, steps, prior=tables, **kw)
    return tables


def fit_signs(tables: ContextTables, images: list[np.ndarray]) -> ContextTables:
    """The sign tables alone, refitted to the encoder's choices with these tables."""
    hist = np.zeros((2, 3, PASSES, SIGN_CONTEXTS, 2))
    for rgb in images:
        for lv, step in enumerate(tables.steps):
            ints, levels = subbands(rgb, float(step), tables, lv)
            for _, p, _, _, (c, o, sctx, neg) in entropy.analyse(ints, levels):
                np.add.at(hist, (int(c > 0), o, p, sctx, neg.astype(np.int64)), 1.0)
    tables.signs = sign_counts(hist)
    return tables


def code_length_bits(tables: ContextTables, images: list[np.ndarray]) -> np.ndarray:
    """Actual coded size in bits of each image at each level (the runtime's encoder)."""
    out = np.zeros((len(images), tables.levels))
    for i, rgb in enumerate(images):
        for lv, step in enumerate(tables.steps):
            ints, levels = subbands(rgb, float(step), scale=tables.band_scale)
            out[i, lv] = 8 * len(entropy.encode(ints, levels, tables, lv))
    return out


def ladder(levels: int, coarsest: float, ratio: float) -> np.ndarray:
    """Base steps of the quality levels, coarsest (level 1) first, each ratio times the last."""
    return coarsest * ratio ** np.arange(levels)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fit the codec's context tables: " + (__doc__ or "").split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--levels", type=int, default=12)
    ap.add_argument("--coarsest", type=float, default=128.0, help="base step of level 1 (0..255 scale)")
    ap.add_argument("--ratio", type=float, default=2**-0.5, help="step ratio between adjacent levels")
    ap.add_argument("--every", type=int, default=3, help="use every k-th training image")
    ap.add_argument("--val-count", type=int, default=30, help="held out, as by the training commands")
    ap.add_argument("--rounds", type=int, default=2, help="fits, each to the encoder's choices with the last")
    ap.add_argument("--band-scale", type=Path, help="step factors: the 'best' of a training.tune_steps result")
    ap.add_argument("--lifting", type=Path, help="fit to a learned wavelet (a training.train_lifting checkpoint)")
    args = ap.parse_args(argv)
    scale = None
    if args.band_scale:
        scale = np.asarray(json.loads(args.band_scale.read_text())["best"], np.float64)
    train, _ = split_files(list_images(args.data), args.val_count)
    images = [np.ascontiguousarray(load_rgb(f).transpose(2, 0, 1)) for f in train[:: args.every]]
    t0 = time.time()
    transform = AsTransform.load(args.lifting) if args.lifting else None
    tables = fit_iterated(
        images, ladder(args.levels, args.coarsest, args.ratio), rounds=args.rounds, scale=scale, transform=transform
    )
    tables.save(args.out)
    print(f"fitted on {len(images)} images in {time.time() - t0:.0f} s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
