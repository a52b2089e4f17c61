"""Export a trained codec checkpoint for the runtime.

    python -m training.export --ckpt runs/codec.pt --id NAME --data DIR [--models models] [--default]

Writes NAME.encoder.onnx and NAME.decoder.onnx (dynamic height and width), NAME.decoder-int8.onnx
(the decoder with its deblocking network in int8, calibrated on --data latents), NAME.tables.npz
(the integer context tables of aecompress.entropy, fitted to the latents of the --data images, and
the per-level gains) and the model's entry in models/manifest.json; also the PyTorch weights to
training/weights/NAME.pt so that tests can check ONNX against PyTorch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aecompress.models import MANIFEST, file_sha256
from training.codec_model import CodecConfig, GainedFactorizedCodec
from training.data import list_images, load_rgb
from training.entropy_model import fit_context_tables
from training.nets import Denoiser

WEIGHTS_DIR = Path(__file__).parent / "weights"
PRECISION = 16
# Context tables: channels weighed for the lower activity, its buckets, neighbour buckets (aecompress.entropy).
CONTEXT = {"window": 64, "k1": 16, "k2": 8}


def load_codec(path: Path) -> tuple[GainedFactorizedCodec, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = GainedFactorizedCodec(CodecConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def export_onnx(module: nn.Module, examples: tuple[torch.Tensor, ...], path: Path, inputs: list[str], out: str) -> None:
    axes = {name: {2: "height", 3: "width"} for name in [*inputs, out]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is the mature one
        torch.onnx.export(
            module,
            examples,
            str(path),
            input_names=inputs,
            output_names=[out],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


@torch.no_grad()
def training_latents(model: GainedFactorizedCodec, files: list[Path]) -> list[list[np.ndarray]]:
    """Rounded latents of every image at every level, as the runtime's encoder makes them."""
    out: list[list[np.ndarray]] = [[] for _ in range(model.cfg.levels)]
    for f in files:
        a = load_rgb(f)
        h, w = a.shape[0] // 16 * 16, a.shape[1] // 16 * 16
        x = torch.from_numpy(np.ascontiguousarray(a[:h, :w])).permute(2, 0, 1)[None].float() / 255
        y = model.g_a(x)
        for lvl in range(model.cfg.levels):
            g, _ = model.gains(torch.tensor([lvl]))
            out[lvl].append(torch.round(y * g)[0].clamp(-32768, 32767).numpy().astype(np.int16))
    return out


def quantize_decoder(src: Path, dst: Path, calibration: list[np.ndarray]) -> None:
    """An 8-bit copy of the decoder (ONNX Runtime static quantisation, per-channel weights) in
    which only the deblocking network's inner convolutions, most of its multiply-adds, run in
    int8. The latent mixing, the block transform and the last layer stay float: quantising the
    latents or the image path cost up to 4 dB at high rates, these layers under 0.1 dB."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self) -> dict | None:
            y = next(self.items, None)
            return None if y is None else {"latents": y}

    graph = onnx.load(str(src)).graph
    inner = [n.name for n in graph.node if n.op_type == "Conv" and n.name.startswith("/refine/")]
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=inner[:-1],
        # 7-bit weights: CPUs without VNNI multiply uint8 by int8 in saturating 16-bit pairs
        # (255 * 127 * 2 overflows), so full-range weights would decode differently there than
        # here. With them every x86 CPU computes the same exact integer sums.
        reduce_range=True,
    )


def write_tables(model: GainedFactorizedCodec, path: Path, latents: list[list[np.ndarray]]) -> None:
    tables = fit_context_tables(model.prior, latents, PRECISION, **CONTEXT)
    np.savez_compressed(
        path,
        **tables,
        gain=model.log_gain.detach().exp().numpy().astype(np.float32),
        igain=model.log_igain.detach().exp().numpy().astype(np.float32),
    )


def calibration_inputs(model: GainedFactorizedCodec, latents: list[list[np.ndarray]], count: int = 24) -> list:
    """Decoder inputs of a spread of training images, every level represented."""
    igain = model.log_igain.detach().exp().numpy()
    n = len(latents[0])
    picks = [(i * n // count, i % model.cfg.levels) for i in range(count)]
    return [(latents[lvl][i] * igain[lvl][:, None, None]).astype(np.float32)[None] for i, lvl in picks]


def update_manifest(root: Path, entry: dict, make_default: bool) -> None:
    path = root / MANIFEST
    data = json.loads(path.read_text()) if path.exists() else {"schema": 1, "defaults": {}, "models": []}
    old = next((e for e in data["models"] if e["id"] == entry["id"]), None)
    if old and "kodak" in old and "kodak" not in entry:
        entry["kodak"] = old["kodak"]  # figures stay until evaluate replaces them
    data["models"] = [e for e in data["models"] if e["id"] != entry["id"]] + [entry]
    if make_default or entry["kind"] not in data["defaults"]:
        data["defaults"][entry["kind"]] = entry["id"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def export_codec(ckpt: Path, model_id: str, root: Path, default_quality: int, data: Path) -> dict:
    model, state = load_codec(ckpt)
    cfg = model.cfg
    files = {
        "encoder": f"{model_id}.encoder.onnx",
        "decoder": f"{model_id}.decoder.onnx",
        "decoder_int8": f"{model_id}.decoder-int8.onnx",
        "tables": f"{model_id}.tables.npz",
    }
    with torch.no_grad():
        export_onnx(model.g_a, (torch.rand(1, 3, 64, 96),), root / files["encoder"], ["image"], "latents")
        export_onnx(model.g_s, (torch.randn(1, cfg.m, 4, 6),), root / files["decoder"], ["latents"], "image")
    images = list_images(data)
    latents = training_latents(model, images)
    write_tables(model, root / files["tables"], latents)
    quantize_decoder(root / files["decoder"], root / files["decoder_int8"], calibration_inputs(model, latents))
    context = {**CONTEXT, "fitted_on": f"{len(images)} images in {data}"}
    save_weights(model_id, {"config": cfg.to_dict(), "model": model.state_dict(), "step": state["step"]})
    return {
        "kind": "codec",
        "files": files,
        "architecture": f"{cfg.arch} transforms, simplified GDN, N={cfg.n}, M={cfg.m}, "
        f"{cfg.levels} levels sharing transforms via latent gains",
        "stride": 16,
        "macs_per_pixel": {
            "encoder": macs_per_pixel(model.g_a, (torch.rand(1, 3, 256, 256),), 256 * 256),
            "decoder": macs_per_pixel(model.g_s, (torch.randn(1, cfg.m, 16, 16),), 256 * 256),
        },
        "entropy": {"model": "integer context tables over a factorized prior", **context},
        "levels": cfg.levels,
        "lambdas": cfg.lambdas,
        "default_quality": default_quality or (cfg.levels + 1) // 2,
        "steps": state["step"],
    }


def export_denoiser(ckpt: Path, model_id: str, root: Path) -> dict:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    model = Denoiser()
    model.load_state_dict(state["model"])
    model.eval()
    files = {"model": f"{model_id}.onnx"}
    with torch.no_grad():
        export_onnx(
            model,
            (torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)),
            root / files["model"],
            ["noisy", "sigma"],
            "clean",
        )
    save_weights(model_id, {"model": model.state_dict(), "step": state["step"]})
    return {
        "kind": "denoiser",
        "files": files,
        "architecture": "residual U-Net on a 2x pixel-unshuffle, noise-level map input",
        "sigma_range": [0, 55],
        "macs_per_pixel": {"model": macs_per_pixel(model, (torch.rand(1, 3, 64, 64), torch.rand(1, 1, 64, 64)), 4096)},
        "steps": state["step"],
    }


@torch.no_grad()
def macs_per_pixel(module: nn.Module, inputs: tuple[torch.Tensor, ...], pixels: int) -> int:
    """Multiply-adds of the convolutions per image pixel, for the benchmark's roofline ratio."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            total += out.numel() * mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups
        elif isinstance(mod, nn.ConvTranspose2d):
            total += inp[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1] // mod.groups

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    module(*inputs)
    for h in handles:
        h.remove()
    return round(total / pixels)


def save_weights(model_id: str, obj: dict) -> None:
    WEIGHTS_DIR.mkdir(exist_ok=True)
    torch.save(obj, WEIGHTS_DIR / f"{model_id}.pt")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--id", required=True)
    ap.add_argument("--kind", choices=["codec", "denoiser"], default="codec")
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--data", type=Path, help="codec: training images to fit the context tables to")
    ap.add_argument("--data-note", default="../shared/data/train (BSDS500 train+test, 49 Wikimedia photos)")
    ap.add_argument("--default", action="store_true", help="make this the default model of its kind")
    ap.add_argument("--default-quality", type=int, default=0)
    args = ap.parse_args(argv)

    args.models.mkdir(parents=True, exist_ok=True)
    if args.kind == "codec":
        if not args.data:
            ap.error("--data is required for a codec")
        entry = export_codec(args.ckpt, args.id, args.models, args.default_quality, args.data)
    else:
        entry = export_denoiser(args.ckpt, args.id, args.models)
    steps = entry.pop("steps")
    entry = {
        "id": args.id,
        "version": 1,
        **entry,
        "sha256": {k: file_sha256(args.models / v) for k, v in entry["files"].items()},
        "training": {"data": args.data_note, "steps": steps, "exported": datetime.date.today().isoformat()},
    }
    update_manifest(args.models, entry, args.default)
    print(f"exported {args.kind} {args.id} (step {steps}) to {args.models}")


if __name__ == "__main__":
    main()
