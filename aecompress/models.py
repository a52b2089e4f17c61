"""The model registry: models/manifest.json, file lookup and hash checks.

The manifest is the single description of what training/export.py writes and what the runtime
reads. A model's hash (the first 16 bytes of the sha256 over its files' sha256 digests, in the
manifest's file order) is written into every .lat file, so a file is only ever decoded by the
exact model that made it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from aecompress import runtime
from aecompress.errors import ModelError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    kind: str  # "codec" or "denoiser"
    files: dict[str, str]
    sha256: dict[str, str]
    meta: dict = field(default_factory=dict, compare=False)
    root: Path = Path(".")

    def path(self, role: str) -> Path:
        if role not in self.files:
            raise ModelError(f"model {self.id} has no {role} file")
        return self.root / self.files[role]

    @property
    def hash(self) -> bytes:
        h = hashlib.sha256()
        for role in self.files:
            h.update(bytes.fromhex(self.sha256[role]))
        return h.digest()[:16]

    @property
    def default_quality(self) -> int:
        """A codec's default level: the manifest's, else the middle one."""
        return int(self.meta.get("default_quality", (int(self.meta.get("levels", 1)) + 1) // 2))

    def verify(self, roles: list[str] | None = None) -> None:
        """Check the files (default: all) against the manifest's sha256."""
        for role in roles if roles is not None else self.files:
            p = self.path(role)
            if not p.is_file():
                raise ModelError(f"model file missing: {p}")
            if file_sha256(p) != self.sha256[role]:
                raise ModelError(f"model file {p.name} does not match its manifest hash")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def models_dir() -> Path:
    """AEC_MODELS_DIR if set (for development), else the models packaged with aecompress."""
    env = os.environ.get("AEC_MODELS_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("aecompress.model_files")))


@cache
def manifest(root: Path | None = None) -> dict:
    root = root or models_dir()
    try:
        with open(root / MANIFEST) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ModelError(f"no model manifest in {root}") from None


def get(model_id: str | None = None, kind: str = "codec", root: Path | None = None) -> ModelInfo:
    """The model of that id, or the manifest's default model of that kind."""
    root = root or models_dir()
    m = manifest(root)
    if model_id is None:
        model_id = m.get("defaults", {}).get(kind)
        if model_id is None:
            raise ModelError(f"no default {kind} model in the manifest")
    for entry in m["models"]:
        if entry["id"] == model_id:
            if entry["kind"] != kind:
                raise ModelError(f"model {model_id} is a {entry['kind']}, not a {kind}")
            return ModelInfo(entry["id"], entry["kind"], entry["files"], entry["sha256"], entry, root)
    have = ", ".join(e["id"] for e in m["models"])
    raise ModelError(f"unknown model {model_id!r} (this aec has: {have}; a newer model needs a newer aecompress)")


TUNES = ("psnr", "ssim")


def tuned(tune: str, root: Path | None = None) -> str:
    """The id of the codec model the manifest names for a metric: "psnr" (MSE-trained, the
    sharpest numbers) or "ssim" (steps and post-filter trained for MS-SSIM)."""
    if tune not in TUNES:
        raise ValueError(f"tune must be one of {', '.join(TUNES)}, got {tune!r}")
    model_id = manifest(root or models_dir()).get("tunes", {}).get(tune)
    if model_id is None:
        raise ModelError(f"this aec has no codec model tuned for {tune}")
    return model_id


def codec_id(model: str | None, tune: str | None, root: Path | None = None) -> str | None:
    """A codec model id from --model or --tune (at most one; neither: None, the default)."""
    if model is not None and tune is not None:
        raise ValueError("give a model or a tune, not both")
    return tuned(tune, root) if tune is not None else model


def load_session(info: ModelInfo, role: str, device: str = "auto", threads: int | None = None):
    """An ONNX Runtime session of one model file: from the optimised-graph cache when it holds
    this exact file (the entry checks itself, so the model file need not be read), else from
    the file, checked against the manifest first."""
    sess = runtime.cached_session(info.sha256[role], device, threads)
    if sess is None:
        info.verify([role])
        sess = runtime.session(info.path(role), device, threads, cache_as=info.sha256[role])
    return sess
