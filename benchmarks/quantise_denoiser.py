"""What an 8-bit denoiser would buy: python -m benchmarks.quantise_denoiser --kodak DIR --train DIR.

Quantises the default denoiser with ONNX Runtime's static quantisation (QDQ, per-channel int8
weights, uint8 activations calibrated on degraded crops of three training photographs, never on
the benchmark), then runs the float and the 8-bit graph on every sixth Kodak image under AWGN 25
and camera noise with JPEG (training/degrade.py), blind, 2 threads: PSNR and seconds per image.
Needs the train extra (for the degradations).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from aecompress import models
from aecompress.images import psnr
from aecompress.noise_level import estimate_sigma
from training import degrade
from training.data import list_images, load_rgb

CONDITIONS = ("awgn25", "camera-jpeg")


def inputs(noisy: np.ndarray) -> dict:
    x = (noisy.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    return {"noisy": x, "sigma": np.full((1, 1, *noisy.shape[:2]), estimate_sigma(noisy) / 255, np.float32)}


class Calibration(CalibrationDataReader):
    def __init__(self, files: list[Path]) -> None:
        rng = np.random.default_rng(0)
        items = []
        for f in files:
            a = np.ascontiguousarray(load_rgb(f)[:160, :240])
            for recipe in list(degrade.CONDITIONS.values())[:5]:
                items.append(inputs(degrade.apply(a, recipe, rng)[1]))
        self.items = iter(items)

    def get_next(self):
        return next(self.items, None)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kodak", required=True)
    ap.add_argument("--train", required=True)
    args = ap.parse_args(argv)
    src = models.get(None, "denoiser").path("model")
    with tempfile.TemporaryDirectory() as tmp:
        pre, q8 = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        calib = [f for f in list_images(args.train) if f.name.startswith("bsds_train")][:3]
        quantize_static(
            str(pre),
            str(q8),
            Calibration(calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sessions = {
            "float32": ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"]),
            "int8": ort.InferenceSession(str(q8), opts, providers=["CPUExecutionProvider"]),
        }
        scores: dict = {}
        for i, f in enumerate(list_images(args.kodak)[::6]):
            clean = load_rgb(f)
            for cond in CONDITIONS:
                target, noisy = degrade.apply(clean, degrade.CONDITIONS[cond], np.random.default_rng(i))
                feed = inputs(noisy)
                for name, sess in sessions.items():
                    t0 = time.perf_counter()
                    out = sess.run(None, feed)[0]
                    dt = time.perf_counter() - t0
                    img = np.clip(np.rint(out[0].transpose(1, 2, 0) * 255), 0, 255)
                    scores.setdefault((cond, name), []).append((psnr(img, target), dt))
    for (cond, name), rows in scores.items():
        p, t = np.mean(rows, axis=0)
        print(f"{cond:12s} {name:8s} {p:.2f} dB  {t:.3f} s per image")


if __name__ == "__main__":
    main()
