"""How much the context tables save over the factorized prior, on the same latents.

    python -m training.context_gain --ckpt training/weights/ID.pt --tables models/ID.tables.npz --data DIR

Encodes every image's latents at every level twice with the runtime's coder: with the model's
context tables, and with the learned factorized prior alone; prints the mean bits per pixel of
both and the saving.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from aecompress import entropy
from training.data import list_images
from training.entropy_model import factorized_tables
from training.export import load_codec, training_latents


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--tables", required=True, type=Path)
    ap.add_argument("--data", required=True)
    args = ap.parse_args(argv)

    model, _ = load_codec(args.ckpt)
    files = list_images(args.data)
    latents = training_latents(model, files)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "factorized.npz"
        np.savez(path, **factorized_tables(model.prior))
        plain = entropy.EntropyTables.load(path)
    context = entropy.EntropyTables.load(args.tables)
    print("| level | factorized prior, bpp | context tables, bpp | saving |")
    print("|---|---|---|---|")
    for lvl, qs in enumerate(latents):
        pixels = sum(q.shape[1] * q.shape[2] * 256 for q in qs)
        a, b = (sum(8 * len(entropy.encode(q.astype(np.int64), t, lvl)) for q in qs) / pixels for t in (plain, context))
        print(f"| {lvl + 1} | {a:.4f} | {b:.4f} | {100 * (1 - b / a):.1f}% |", flush=True)


if __name__ == "__main__":
    main()
