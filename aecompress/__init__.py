"""aecompress: learned image compression and denoising on ONNX Runtime.

    import aecompress
    data = aecompress.compress(image, quality=7)   # PIL image, NumPy array, path or bytes
    image = aecompress.decompress(data)
    clean = aecompress.denoise(noisy)              # same type as the input

`Codec` and `Denoiser` hold their models for reuse (and pickle to worker processes);
`encode_latents` / `decode_latents` give the codec's integer representation. Importing the
package loads neither ONNX Runtime nor the models: that happens on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.6.1"

__all__ = [
    "Codec",
    "Denoiser",
    "Latents",
    "compress",
    "decode_latents",
    "decompress",
    "denoise",
    "encode_latents",
]

if TYPE_CHECKING:  # pragma: no cover
    from aecompress.api import Latents, compress, decode_latents, decompress, denoise, encode_latents
    from aecompress.codec import Codec
    from aecompress.denoiser import Denoiser

_WHERE = {
    "Codec": "aecompress.codec",
    "Denoiser": "aecompress.denoiser",
    **{
        name: "aecompress.api"
        for name in ("Latents", "compress", "decode_latents", "decompress", "denoise", "encode_latents")
    },
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'aecompress' has no attribute {name!r}")
