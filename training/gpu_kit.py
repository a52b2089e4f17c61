"""The prepared GPU run: continue the post-filter's training on a CUDA machine for a few minutes.

On this machine, before the device call (the data folder does not travel; this packs a copy of the
training split small enough to carry):

    python -m training.gpu_kit --pack ../shared/data/train runs/gpu_data

On the GPU machine (carry runs/gpu_data), at most 9 minutes of training from the shipped weights:

    python -m training.gpu_kit --data runs/gpu_data --out "$OUT" --minutes 9

It writes OUT/postfilter.pt (resumable here with train_postfilter --ckpt) and OUT/train.log.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from PIL import Image

from training.checkpoints import split_files
from training.data import list_images

PACK_BYTES = 40 << 20


class _Tee:
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, s: str) -> int:
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)

    def flush(self) -> None:
        for st in self.streams:
            st.flush()


def pack(src: Path, dst: Path, budget: int = PACK_BYTES) -> None:
    """The training split (never the validation images), as JPEG q95, at most ~1000 px, under budget."""
    train, _ = split_files(list_images(src), 30)
    dst.mkdir(parents=True, exist_ok=True)
    used = 0
    for f in train:
        with Image.open(f) as im:
            im = im.convert("RGB")
            if max(im.size) > 1000:
                im = im.resize((im.width // 2, im.height // 2), Image.LANCZOS)
            out = dst / (f.stem + ".jpg")
            im.save(out, quality=95)
        used += out.stat().st_size
        if used > budget:
            out.unlink()
            break
    print(f"packed {len(list(dst.glob('*.jpg')))} images, {used >> 20} MiB, in {dst}")


def default_init() -> Path | None:
    from aecompress import models

    p = Path(__file__).parent / "weights" / f"{models.get().id}.pt"
    return p if p.exists() else None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", nargs=2, type=Path, metavar=("SRC", "DST"))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--init", type=Path, help="default: the shipped codec's post-filter weights")
    ap.add_argument("--minutes", type=float, default=9.0)
    ap.add_argument("--steps", type=int, default=10**9, help="at most this many steps in this run")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--crop", type=int, default=128)
    args = ap.parse_args(argv)
    if args.pack:
        pack(*args.pack)
        return
    if not args.data or not args.out:
        ap.error("--data and --out are required (or --pack SRC DST)")
    args.out.mkdir(parents=True, exist_ok=True)
    init = args.init or default_init()
    ckpt = args.out / "postfilter.pt"
    from training.checkpoints import load_state
    from training.train_postfilter import main as train

    start = (load_state(ckpt) or (load_state(init) if init else None) or {}).get("step", 0)

    train_args = ["--data", str(args.data), "--ckpt", str(ckpt), "--device", args.device, "--batch", str(args.batch)]
    train_args += ["--crop", str(args.crop), "--minutes", str(args.minutes), "--steps", str(start + args.steps)]
    gpu = args.device != "cpu"
    train_args += ["--val-count", "4", "--val-every", "1000", "--threads", "4" if gpu else "1"]
    train_args += ["--workers", "12" if gpu else "0"]
    if init:
        train_args += ["--init", str(init)]
    with open(args.out / "train.log", "w") as log, contextlib.redirect_stdout(_Tee(sys.stdout, log)):
        train(train_args)


if __name__ == "__main__":
    main()
