"""Export a trained codec checkpoint for the runtime.

    python -m training.export --ckpt runs/codec.pt --id NAME [--models models] [--default]

Writes NAME.encoder.onnx and NAME.decoder.onnx (dynamic height and width), NAME.tables.npz (integer
CDFs, offsets, sizes, per-level gains) and the model's entry in models/manifest.json; also the
PyTorch weights to training/weights/NAME.pt so that tests can check ONNX against PyTorch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aecompress.models import MANIFEST, file_sha256
from training.codec_model import CodecConfig, GainedFactorizedCodec

WEIGHTS_DIR = Path(__file__).parent / "weights"
PRECISION = 16


def load_codec(path: Path) -> tuple[GainedFactorizedCodec, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = GainedFactorizedCodec(CodecConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, inp: str, out: str) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[inp],
        output_names=[out],
        dynamic_axes={inp: {2: "height", 3: "width"}, out: {2: "height", 3: "width"}},
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )


def write_tables(model: GainedFactorizedCodec, path: Path) -> None:
    cdf, offsets, sizes = model.prior.cdf_tables(PRECISION)
    np.savez_compressed(
        path,
        cdf=cdf,
        offsets=offsets,
        sizes=sizes,
        precision=np.int32(PRECISION),
        shape=np.array([model.cfg.levels, model.cfg.m], dtype=np.int32),
        gain=model.log_gain.detach().exp().numpy().astype(np.float32),
        igain=model.log_igain.detach().exp().numpy().astype(np.float32),
    )


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, type=Path)
    ap.add_argument("--id", required=True)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--data-note", default="../shared/data/train (BSDS500 train+test, 49 Wikimedia photos)")
    ap.add_argument("--default", action="store_true", help="make this the default codec")
    ap.add_argument("--default-quality", type=int, default=0)
    args = ap.parse_args(argv)

    model, state = load_codec(args.ckpt)
    cfg = model.cfg
    args.models.mkdir(parents=True, exist_ok=True)
    files = {
        "encoder": f"{args.id}.encoder.onnx",
        "decoder": f"{args.id}.decoder.onnx",
        "tables": f"{args.id}.tables.npz",
    }
    with torch.no_grad():
        export_onnx(model.g_a, torch.rand(1, 3, 64, 96), args.models / files["encoder"], "image", "latents")
        export_onnx(model.g_s, torch.randn(1, cfg.m, 4, 6), args.models / files["decoder"], "latents", "image")
    write_tables(model, args.models / files["tables"])
    WEIGHTS_DIR.mkdir(exist_ok=True)
    torch.save(
        {"config": cfg.to_dict(), "model": model.state_dict(), "step": state["step"]}, WEIGHTS_DIR / f"{args.id}.pt"
    )
    entry = {
        "id": args.id,
        "kind": "codec",
        "version": 1,
        "files": files,
        "sha256": {k: file_sha256(args.models / v) for k, v in files.items()},
        "architecture": f"bmshj2018-factorized shape, simplified GDN, N={cfg.n}, M={cfg.m}, "
        f"{cfg.levels} levels sharing transforms via latent gains",
        "stride": 16,
        "levels": cfg.levels,
        "lambdas": cfg.lambdas,
        "default_quality": args.default_quality or (cfg.levels + 1) // 2,
        "training": {"data": args.data_note, "steps": state["step"], "exported": datetime.date.today().isoformat()},
    }
    update_manifest(args.models, entry, args.default)
    print(f"exported {args.id} (step {state['step']}) to {args.models}")


if __name__ == "__main__":
    main()
