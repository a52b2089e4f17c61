"""Time CompressAI's FactorizedPrior(128, 192) reference: compress and decompress per image.

    python benchmarks/bench_compressai.py --threads 2 IMAGES...   (in an environment with compressai)

The weights are random (untrained): the timing of the transforms and of CompressAI's own rANS
coder does not depend on them. Prints JSON: seconds per image for compress and decompress (the
fastest of --repeat passes),
each from a PIL image to bytes and back, start-up excluded. `python -m benchmarks.bench DIR
--compressai-python PY` runs it beside aec's own figures in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types

import numpy as np
import torch
from PIL import Image

if "torchvision" not in sys.modules:
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001
        # CompressAI imports torchvision only to register dataset transforms; where no torchvision
        # matches the installed torch (this project's CPU build), an empty stand-in suffices.
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.transforms"] = stub.transforms

from compressai.models import FactorizedPrior  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="passes over the images; the fastest counts")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    net = FactorizedPrior(128, 192).eval()
    net.update(force=True)
    xs = []
    for f in args.images:
        a = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255
        h, w = a.shape[0] // 64 * 64, a.shape[1] // 64 * 64
        xs.append(torch.from_numpy(a[:h, :w]).permute(2, 0, 1)[None].contiguous())
    with torch.no_grad():
        net.compress(xs[0])  # warm-up
        t_enc = t_dec = float("inf")
        for _ in range(args.repeat):
            enc = dec = 0.0
            for x in xs:
                t0 = time.perf_counter()
                out = net.compress(x)
                enc += time.perf_counter() - t0
                t0 = time.perf_counter()
                net.decompress(out["strings"], out["shape"])
                dec += time.perf_counter() - t0
            t_enc, t_dec = min(t_enc, enc), min(t_dec, dec)
    print(json.dumps({"compress_s": t_enc / len(xs), "decompress_s": t_dec / len(xs), "threads": args.threads}))


if __name__ == "__main__":
    main()
