"""What an 8-bit denoiser buys: python -m benchmarks.quantise_denoiser --kodak DIR --train DIR.

Quantises a denoiser (training/quantise_onnx.py: calibrated on degraded crops of three training
photographs, never on the benchmark), then runs the float and the 8-bit graph, and any baseline
models, on every sixth Kodak image under the chosen conditions of training/degrade.py, blind,
2 threads: PSNR and seconds per image, each model's images in the same loop (interleaved, so a
busy machine slows all alike). Needs the train extra (for the degradations).

    --model ID [--root DIR]   the denoiser to quantise (default: the default one)
    --baseline ID,...         shipped denoisers to run beside it (float, as shipped)
    --reduce-range / --no-reduce-range   7-bit weights, for x86 CPUs without VNNI (default on)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from aecompress import models
from aecompress.images import psnr
from training import degrade
from training.data import list_images, load_rgb
from training.quantise_onnx import denoiser_feeds, quantise_denoiser

CONDITIONS = "awgn15,awgn25,awgn50,camera-jpeg,phone-double-jpeg,web-resized"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--model", help="denoiser id (default: the default denoiser)")
    ap.add_argument("--root", type=Path, help="models folder holding --model (default: the shipped one)")
    ap.add_argument("--baseline", default="", help="comma-separated shipped denoiser ids to run beside it")
    ap.add_argument("--conditions", default=CONDITIONS)
    ap.add_argument("--every", type=int, default=6)
    ap.add_argument("--reduce-range", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    info = models.get(args.model, "denoiser", args.root)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2

    def session(path: Path) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    with tempfile.TemporaryDirectory() as tmp:
        q8 = Path(tmp) / "int8.onnx"
        calib = [f for f in list_images(args.train) if f.name.startswith("bsds_train")][:3]
        quantise_denoiser(info.path("model"), q8, calib, args.reduce_range)
        sessions = {f"{info.id} float32": session(info.path("model")), f"{info.id} int8": session(q8)}
        for b in filter(None, args.baseline.split(",")):
            sessions[f"{b} float32"] = session(models.get(b, "denoiser").path("model"))
        scores: dict = {}
        for i, f in enumerate(list_images(args.kodak)[:: args.every]):
            clean = load_rgb(f)
            for cond in args.conditions.split(","):
                target, noisy = degrade.apply(clean, degrade.CONDITIONS[cond], np.random.default_rng(i))
                feed = denoiser_feeds(noisy)
                for name, sess in sessions.items():
                    t0 = time.perf_counter()
                    out = sess.run(None, feed)[0]
                    dt = time.perf_counter() - t0
                    img = np.clip(np.rint(out[0].transpose(1, 2, 0) * 255), 0, 255)
                    scores.setdefault((cond, name), []).append((psnr(img, target), dt))
    for (cond, name), rows in scores.items():
        p, t = np.mean(rows, axis=0)
        print(f"{cond:18s} {name:28s} {p:.2f} dB  {t:.3f} s per image", flush=True)


if __name__ == "__main__":
    main()
