"""Export trained models for the runtime.

    python -m training.export --ckpt runs/postfilter.pt --tables runs/tables.npz --id NAME [--default]
    python -m training.export --kind denoiser --ckpt runs/denoiser.pt --id NAME [--default]

A codec is NAME.decoder.onnx (the post-filter, dynamic height and width, inputs "image" and
"step"), with --lifting NAME.encoder.onnx and NAME.synthesis.onnx (one learned wavelet level and
its inverse, aecompress.transform), and NAME.tables.npz (the levels' steps and the integer context tables of
aecompress.entropy, fitted by training/entropy_model.py). Each export writes the model's entry in
models/manifest.json and the PyTorch weights to training/weights/NAME.pt, so that tests can check
ONNX against PyTorch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from aecompress.entropy import BUCKETS, FEATURES, ContextTables
from aecompress.lossless_coder import BUCKETS as LL_BUCKETS
from aecompress.lossless_coder import FEATURES as LL_FEATURES
from aecompress.lossless_coder import PASSES, LosslessTables
from aecompress.models import MANIFEST, TUNES, file_sha256
from aecompress.reversible import KERNELS
from training.data import list_images
from training.lifting import LearnedLifting, load_lifting
from training.nets import Denoiser, PostFilter
from training.quantise_onnx import quantise_denoiser

WEIGHTS_DIR = Path(__file__).parent / "weights"


def export_onnx(module: nn.Module, examples: tuple[torch.Tensor, ...], path: Path, inputs: list[str], out: str) -> None:
    axes = {name: {2: "height", 3: "width"} for name in [*inputs, out] if name != "step"}
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


class _Analysis(nn.Module):
    def __init__(self, lifting: LearnedLifting) -> None:
        super().__init__()
        self.lifting = lifting

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.lifting.analyse(x)


class _Synthesis(_Analysis):
    def forward(self, ll: torch.Tensor, hl: torch.Tensor, lh: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
        return self.lifting.synthesise(ll, hl, lh, hh)


BANDS = ["ll", "hl", "lh", "hh"]


def export_lifting(lifting: LearnedLifting, encoder: Path, synthesis: Path) -> None:
    """One learned level as two graphs, (N, 1, h, w) -> the four bands and back; every side
    dynamic and named apart (a level's bands differ by one sample on odd sides)."""
    axes = {name: {0: "n", 2: f"{name}_h", 3: f"{name}_w"} for name in ["x", *BANDS]}
    x = torch.rand(1, 1, 70, 54) * 255 - 128
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notes on traced shapes
        bands = lifting.analyse(x)
        for module, args, inputs, outputs, path in (
            (_Analysis(lifting), (x,), ["x"], BANDS, encoder),
            (_Synthesis(lifting), tuple(bands), BANDS, ["x"], synthesis),
        ):
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={k: axes[k] for k in inputs + outputs},
                opset_version=17,
                do_constant_folding=True,
                dynamo=False,
            )


def update_manifest(root: Path, entry: dict, make_default: bool, tune: str | None = None) -> None:
    path = root / MANIFEST
    data = json.loads(path.read_text()) if path.exists() else {"schema": 1, "defaults": {}, "models": []}
    old = next((e for e in data["models"] if e["id"] == entry["id"]), None)
    if old and "kodak" in old and "kodak" not in entry:
        entry["kodak"] = old["kodak"]  # figures stay until evaluate replaces them
    data["models"] = [e for e in data["models"] if e["id"] != entry["id"]] + [entry]
    if make_default or entry["kind"] not in data["defaults"]:
        data["defaults"][entry["kind"]] = entry["id"]
    if tune:  # aec compress --tune TUNE takes this model
        data.setdefault("tunes", {})[tune] = entry["id"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def load_postfilter(path: Path) -> tuple[PostFilter, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = PostFilter(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.eval(), state


def export_codec(
    ckpt: Path,
    tables: Path,
    model_id: str,
    root: Path,
    default_quality: int,
    tune: str | None = None,
    lifting: Path | None = None,
) -> dict:
    """lifting: a training/train_lifting.py checkpoint, for a learned transform (its encoder and
    synthesis graphs); without it the model's transform is the fixed CDF 9/7."""
    model, state = load_postfilter(ckpt)
    t = ContextTables.load(tables)
    files = {"decoder": f"{model_id}.decoder.onnx", "tables": f"{model_id}.tables.npz"}
    transform = {}
    if lifting is not None:
        lift, lift_state = load_lifting(lifting)
        files = {"encoder": f"{model_id}.encoder.onnx", "synthesis": f"{model_id}.synthesis.onnx", **files}
        export_lifting(lift, root / files["encoder"], root / files["synthesis"])
        transform = {"transform": {"kind": "learned lifting", "skip": 0, **lift_state["config"]}}
        save_weights(
            f"{model_id}.lifting",
            {"config": lift_state["config"], "model": {k: v.half() for k, v in lift.state_dict().items()}},
        )
    with torch.no_grad():
        export_onnx(
            model,
            (torch.rand(1, 3, 64, 96), torch.tensor([16.0])),
            root / files["decoder"],
            ["image", "step"],
            "image_out",
        )
    shutil.copyfile(tables, root / files["tables"])
    save_weights(
        model_id,
        {
            "config": state["config"],
            "model": {k: v.half() for k, v in model.state_dict().items()},
            "step": state["step"],
        },
    )
    return {
        "kind": "codec",
        **({"tune": tune} if tune else {}),
        "files": files,
        **transform,
        "architecture": (
            f"ICT + CDF 9/7 lifting with learned corrections (width {transform['transform']['width']}) "
            f"past the finest {transform['transform']['skip']} levels, "
            if transform
            else "ICT + 8-level CDF 9/7 wavelet (fixed), "
        )
        + ("dead-zone quantiser" if t.band_scale is None else "dead-zone quantiser with per-level step factors")
        + ", context-coded subbands, "
        f"learned post-filter (width {state['config']['width']}, {state['config']['blocks']} residual blocks"
        + (f" {state['config']['mid']} wide inside)" if state["config"].get("mid") else ")"),
        "macs_per_pixel": {
            "decoder": macs_per_pixel(model, (torch.rand(1, 3, 256, 256), torch.tensor([16.0])), 256 * 256)
        },
        "entropy": {"model": "integer context tables", "buckets": BUCKETS, "features": list(FEATURES)},
        "levels": t.levels,
        "base_steps": [round(float(v), 4) for v in t.steps],
        "default_quality": default_quality or (t.levels + 1) // 2,
        "steps": state["step"],
    }


def export_lossless(tables: Path, model_id: str, root: Path) -> dict:
    t = LosslessTables.load(tables)
    files = {"tables": f"{model_id}.tables.npz"}
    shutil.copyfile(tables, root / files["tables"])
    return {
        "kind": "lossless",
        "files": files,
        "architecture": f"RCT + integer wavelet (kernel per plane and level: {', '.join(KERNELS)}), "
        f"chroma bands predicted from luma and Cb, {PASSES}-pass context coder with integer tables, "
        "activity scales per band-pass",
        "entropy": {
            "buckets": LL_BUCKETS,
            "features": list(LL_FEATURES),
            "passes": PASSES,
            "tokens": t.counts.shape[-1],
        },
        "steps": 0,  # fitted, not trained
    }


def load_denoiser(path: Path) -> tuple[Denoiser, dict]:
    """A denoiser checkpoint or shipped weights (fp16; unet48-v1's carry no config) -> eval model."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = Denoiser(**(state.get("config") or {}))
    model.load_grown(state["model"])
    return model.eval(), state


def export_denoiser(ckpt: Path, model_id: str, root: Path, calibration: list[Path] | None = None) -> dict:
    """calibration: photographs to calibrate an 8-bit graph on (training/quantise_onnx.py); None
    exports the float graph."""
    model, state = load_denoiser(ckpt)
    with torch.no_grad():  # the shipped fp16 weights are exactly what the ONNX graph holds
        for t in model.state_dict().values():
            t.copy_(t.half().float())
    files = {"model": f"{model_id}.onnx"}
    with torch.no_grad():
        export_onnx(
            model,
            (torch.rand(1, 3, 64, 96), torch.rand(1, 1, 64, 96)),
            root / files["model"],
            ["noisy", "sigma"],
            "clean",
        )
    if calibration:
        quantise_denoiser(root / files["model"], root / files["model"], calibration)
    config = state.get("config") or {}
    half = {k: v.half() for k, v in model.state_dict().items()}  # fp16 is enough to resume or compare
    save_weights(model_id, {"model": half, "step": state["step"], "config": config})
    blocks = config.get("blocks", list(Denoiser.BASE_BLOCKS))
    dec = config.get("dec_blocks", list(Denoiser.BASE_DEC))
    return {
        "kind": "denoiser",
        "files": files,
        "architecture": f"residual U-Net on a 2x pixel-unshuffle, noise-level map input, blocks {blocks} + {dec}"
        + (", int8 (static quantisation, 7-bit weights)" if calibration else ""),
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
    ap.add_argument("--ckpt", type=Path, help="checkpoint (codec and denoiser)")
    ap.add_argument("--id", required=True)
    ap.add_argument("--kind", choices=["codec", "denoiser", "lossless"], default="codec")
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument(
        "--tables", type=Path, help="context tables: training.entropy_model's (codec), training.lossless_model's"
    )
    ap.add_argument("--data-note", default="../shared/data/train (BSDS500 train+test, 49 Wikimedia photos)")
    ap.add_argument("--default", action="store_true", help="make this the default model of its kind")
    ap.add_argument("--default-quality", type=int, default=0)
    ap.add_argument("--tune", choices=TUNES, help="codec: the model aec compress --tune TUNE takes")
    ap.add_argument("--lifting", type=Path, help="codec: a learned transform (training.train_lifting checkpoint)")
    ap.add_argument("--int8", type=Path, help="denoiser: quantise, calibrating on this folder's first 3 BSDS photos")
    args = ap.parse_args(argv)

    args.models.mkdir(parents=True, exist_ok=True)
    if (args.kind == "lossless") != (args.ckpt is None):
        ap.error("--ckpt is required for a codec or denoiser, and not taken for lossless tables")
    if args.kind == "lossless":
        if not args.tables:
            ap.error("--tables is required for lossless")
        entry = export_lossless(args.tables, args.id, args.models)
    elif args.kind == "codec":
        if not args.tables:
            ap.error("--tables is required for a codec")
        entry = export_codec(
            args.ckpt, args.tables, args.id, args.models, args.default_quality, args.tune, args.lifting
        )
    elif args.kind == "denoiser":
        calibration = None
        if args.int8:
            calibration = [f for f in list_images(args.int8) if f.name.startswith("bsds_train")][:3]
            if not calibration:
                ap.error(f"--int8: no bsds_train* photographs in {args.int8}")
        entry = export_denoiser(args.ckpt, args.id, args.models, calibration)
    steps = entry.pop("steps")
    entry = {
        "id": args.id,
        "version": 1,
        **entry,
        "sha256": {k: file_sha256(args.models / v) for k, v in entry["files"].items()},
        "training": {"data": args.data_note, "steps": steps, "exported": datetime.date.today().isoformat()},
    }
    update_manifest(args.models, entry, args.default, args.tune)
    print(f"exported {args.kind} {args.id} (step {steps}) to {args.models}")


if __name__ == "__main__":
    main()
