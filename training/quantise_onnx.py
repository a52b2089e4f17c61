"""An 8-bit denoiser graph: ONNX Runtime static quantisation of the exported float graph.

QDQ format, per-channel int8 weights, uint8 activations calibrated on degraded crops of a few
training photographs (every kind of training/degrade.py's conditions, never the benchmark). On
CPUs with VNNI the integer convolutions run 2-2.5x faster than float32 here. reduce_range keeps
weights to 7 bits, which ONNX Runtime advises for x86 CPUs without VNNI (their u8 x s8 products
can saturate); it is the safe choice for a graph that must run on any x86-64.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from aecompress.noise_level import estimate_sigma
from training import degrade
from training.data import load_rgb


def denoiser_feeds(noisy: np.ndarray) -> dict:
    """(H, W, 3) uint8 noisy image -> the denoiser graph's inputs, the level blind."""
    x = (noisy.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    return {"noisy": x, "sigma": np.full((1, 1, *noisy.shape[:2]), estimate_sigma(noisy) / 255, np.float32)}


class _Calibration(CalibrationDataReader):
    def __init__(self, files: list[Path], crop: tuple[int, int] = (160, 240)) -> None:
        rng = np.random.default_rng(0)
        items = []
        for f in files:
            a = np.ascontiguousarray(load_rgb(f)[: crop[0], : crop[1]])
            for recipe in degrade.CONDITIONS.values():
                items.append(denoiser_feeds(degrade.apply(a, recipe, rng)[1]))
        self.items = iter(items)

    def get_next(self):
        return next(self.items, None)


def quantise_denoiser(src: Path, dst: Path, calibration: list[Path], reduce_range: bool = True) -> None:
    """src float ONNX denoiser -> dst int8 (QDQ) calibrated on crops of the calibration photos."""
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _Calibration(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
