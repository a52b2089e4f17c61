"""Fit the lossless coder's context tables: python -m training.lossless_model --data DIR --out FILE.

Three passes over the training photographs (every image at full size and shrunk by two, which
adds the statistics of sharper, less compressed pictures), each through the runtime's own
transform and coder walk (aecompress.reversible, aecompress.lossless_coder.walk):

1. per band class and pass, non-negative least squares of a coefficient's magnitude on its
   context features gives the activity weights (scaled to integers up to MAX_WEIGHT);
2. quantiles of the activities give the bucket thresholds (equal shares of coefficients, with
   activity 0 its own bucket where it is common);
3. token histograms per bucket give the counts, each row blended with its class-and-pass
   histogram (rows with few samples lean on it) and scaled to integers >= 1.

Validation files (every k-th, --val-count) are left out and their bits per pixel printed, next
to PNG's and, where Pillow has them, WebP lossless's and JPEG 2000 reversible's.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import nnls

from aecompress import lossless, reversible, wavelet
from aecompress.lossless_coder import (
    BUCKETS,
    CAP,
    CLASSES,
    FEATURES,
    MAX_WEIGHT,
    PASSES,
    TOKENS,
    LosslessTables,
    Plane,
    activity,
    to_tokens,
    walk,
)
from training.checkpoints import split_files
from training.data import list_images, load_rgb

SAMPLE = 1000  # rows per band-pass and image kept for the weight and threshold fits
IRLS_ROUNDS = 3
PRIOR = 24.0  # weight, in samples, of the class-and-pass histogram in each bucket's row


SCALES = (1, 2)  # each training image at full size and shrunk by two


def images(files: list[Path]):
    for f in files:
        a = load_rgb(f)
        h, w = a.shape[:2]
        for k in SCALES:
            yield a if k == 1 else np.asarray(Image.fromarray(a).resize((w // k, h // k), Image.LANCZOS))


def band_passes(rgb: np.ndarray):
    """The band-passes the coder sees, through the encoder's own choice of kernels."""
    planes = [Plane(0, 0), Plane(1, 0), Plane(2, 0)]
    levels = wavelet.levels_for(*rgb.shape[:2])
    lows = [[], [], []]
    planes_rct = reversible.rct_forward(rgb)
    bands = [lossless.forward_adaptive(p, levels, lw)[0] for p, lw in zip(planes_rct, lows, strict=True)]
    yield from walk(bands, planes, levels, lows)


def _matrix(feats: list, n: int) -> np.ndarray:
    return np.stack([np.zeros(n, np.float32) if f is None else f.astype(np.float32) for f in feats], axis=1)


def fit_weights(files: list[Path], rng: np.random.Generator) -> np.ndarray:
    rows: dict = {}
    for rgb in images(files):
        for cls, p, feats, hp in band_passes(rgb):
            idx = rng.choice(hp.size, min(SAMPLE, hp.size), replace=False)
            rows.setdefault((cls, p), []).append(
                (_matrix([None if f is None else f[idx] for f in feats], idx.size), hp[idx])
            )
    weights = np.zeros((CLASSES, PASSES, len(FEATURES)), np.int64)
    for (cls, p), parts in rows.items():
        a = np.concatenate([x for x, _ in parts]).astype(np.float64)
        a = np.concatenate([a, np.ones((len(a), 1))], axis=1)  # a constant, left out of the activity
        y = np.minimum(np.concatenate([t for _, t in parts]), CAP).astype(np.float64)
        # A magnitude's spread grows with its scale: least squares weighted by 1 / the prediction
        # (a few rounds) fits the scale of a Laplacian rather than the few largest magnitudes.
        r = np.ones(len(y))
        for _ in range(IRLS_ROUNDS):
            w, _ = nnls(a * np.sqrt(r)[:, None], y * np.sqrt(r))
            r = 1 / np.maximum(a @ w, 0.5)
        w = w[:-1]
        if w.max() > 0:
            weights[cls, p] = np.rint(w / w.max() * MAX_WEIGHT).astype(np.int64)
    return weights


def fit_thresholds(files: list[Path], weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    acts: dict = {}
    for rgb in images(files):
        for cls, p, feats, hp in band_passes(rgb):
            act = activity(weights[cls, p], feats, hp.size)
            acts.setdefault((cls, p), []).append(rng.choice(act, min(SAMPLE, act.size), replace=False))
    th = np.zeros((CLASSES, PASSES, BUCKETS - 1), np.int64)
    for cls in range(CLASSES):
        for p in range(PASSES):
            a = np.concatenate(acts[(cls, p)]) if (cls, p) in acts else np.zeros(1)
            q = np.quantile(a, np.arange(1, BUCKETS) / BUCKETS, method="lower").astype(np.int64)
            t = np.maximum.accumulate(np.maximum(q, 1))  # activity 0 stays in bucket 0
            th[cls, p] = t  # non-decreasing; equal thresholds leave empty buckets
    return th


def fit_counts(files: list[Path], weights: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    tables = LosslessTables(weights, thresholds, np.ones((CLASSES, PASSES, BUCKETS, TOKENS), np.int64))
    hist = np.zeros((CLASSES, PASSES, BUCKETS, TOKENS), np.float64)
    for rgb in images(files):
        for cls, p, feats, hp in band_passes(rgb):
            b = tables.buckets(cls, p, activity(weights[cls, p], feats, hp.size))
            tok = to_tokens(hp)[0]
            np.add.at(hist[cls, p], (b, tok), 1)
    marg = hist.sum(axis=2, keepdims=True)
    marg = (marg + 0.01) / (marg + 0.01).sum(axis=-1, keepdims=True)
    n = hist.sum(axis=-1, keepdims=True)
    prob = (hist + PRIOR * marg) / (n + PRIOR)
    return np.floor(prob * ((1 << 22) - TOKENS)).astype(np.int64) + 1


def evaluate(files: list[Path], tables: LosslessTables) -> dict:
    ours = png = webp = j2k = 0.0
    px = 0
    for f in files:
        rgb = load_rgb(f)
        _, sections = lossless.encode(rgb, "RGB", 8, tables)
        data = b"".join(sections)
        px += rgb.shape[0] * rgb.shape[1]
        ours += 8 * len(data)
        im = Image.fromarray(rgb)
        for fmt, opts, acc in (("PNG", {"optimize": True}, "png"), ("WEBP", {"lossless": True, "method": 4}, "webp")):
            buf = io.BytesIO()
            try:
                im.save(buf, fmt, **opts)
            except OSError:
                continue
            if acc == "png":
                png += 8 * buf.tell()
            else:
                webp += 8 * buf.tell()
        buf = io.BytesIO()
        try:
            im.save(buf, "JPEG2000", irreversible=False)
            j2k += 8 * buf.tell()
        except OSError:
            pass
    return {k: round(v / px, 3) for k, v in (("aec", ours), ("png", png), ("webp", webp), ("j2k", j2k))}


def fit(train: list[Path], out: Path, rng: np.random.Generator) -> LosslessTables:
    t0 = time.time()
    weights = fit_weights(train, rng)
    print(f"weights ({time.time() - t0:.0f} s)", flush=True)
    thresholds = fit_thresholds(train, weights, rng)
    print(f"thresholds ({time.time() - t0:.0f} s)", flush=True)
    counts = fit_counts(train, weights, thresholds)
    tables = LosslessTables(weights, thresholds, counts)
    tables.save(out)
    print(f"counts ({time.time() - t0:.0f} s): {len(train)} images; tables in {out}", flush=True)
    return tables


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, help="where the fitted tables go (not with --evaluate)")
    ap.add_argument("--every", type=int, default=3, help="fit on every k-th training image")
    ap.add_argument("--val-count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--evaluate", type=Path, help="no fit: these tables' validation bits per pixel (e.g. models/ID.tables.npz)"
    )
    args = ap.parse_args(argv)
    if (args.out is None) == (args.evaluate is None):
        ap.error("give --out (fit) or --evaluate TABLES")
    train, val = split_files(list_images(args.data), args.val_count)
    # Every 6th of the larger photographs is held out too: closer to camera pictures than the
    # small JPEGs, they are what decisions are made on.
    photos = [f for f in train if f.name.startswith("wiki")][::6]
    train = [f for f in train if f not in photos][:: args.every]
    val = val + photos
    if args.evaluate:
        tables = LosslessTables.load(args.evaluate)
    else:
        tables = fit(train, args.out, np.random.default_rng(args.seed))
    small = [f for f in val if not f.name.startswith("wiki")]
    for name, files in (("small JPEGs", small), ("photographs", [f for f in val if f not in small])):
        if files:
            print(f"validation bits per pixel, {name}:", evaluate(files, tables), flush=True)


if __name__ == "__main__":
    main()
