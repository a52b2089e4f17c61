"""Speed benchmark: python -m benchmarks.bench DIR [--quality N] [--threads N] [--json FILE]

Reports, for the images in DIR, in one run on this machine:
- codec encode and decode throughput (MP/s) with the time split into model, entropy coding and
  image I/O (decode/encode of the image file and the .lat container);
- process start-up: `aec --version`, and one whole `aec compress` of the first image;
- the models' achieved multiply-adds per second against a NumPy float32 matmul measured in the same
  run (the roofline ratio);
- `aec denoise` throughput;
- Pillow's JPEG, WebP and AVIF encode and decode of the same images, for reference.

Each timed pass runs --repeat times and the fastest counts (start-up: the fastest of 5), and the
matmul rate is measured at the start and at the end, the faster counting: on a shared machine
the slower runs time the neighbours as much as the code.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aecompress import container, images
from aecompress.codec import Codec, default_quality
from aecompress.denoiser import Denoiser


def matmul_rate(threads: int, n: int = 1024, repeat: int = 5) -> float:
    """Multiply-adds per second of a float32 matmul (NumPy's BLAS, its own thread count)."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def startup(cmd: list[str], repeat: int = 5) -> float:
    return min(_timed(lambda: subprocess.run(cmd, check=True, capture_output=True)) for _ in range(repeat))


def bench_batch(aec: list[str], files: list[Path], quality: int, threads: int, repeat: int = 1) -> dict:
    """Whole `aec compress` and `aec decompress` processes over all the files, as a shell
    pipeline runs them (start-up, reading ahead and writing included), per file; and the same
    over the first file alone, so that (all - one) / (n - 1) is what each further file of a
    batch costs, start-up left out."""
    import tempfile

    out: dict = {}
    for name, batch in (("", files), ("one_", files[:1])):
        with tempfile.TemporaryDirectory() as tmp:
            common = ["--quiet", "-f", "--threads", str(threads)]
            compress = [*aec, "compress", *common, "-q", str(quality), "-o", f"{tmp}/", *map(str, batch)]
            t_c = min(_timed(lambda cmd=compress: subprocess.run(cmd, check=True)) for _ in range(repeat))
            lats = [str(Path(tmp) / (f.stem + ".lat")) for f in batch]
            decompress = [*aec, "decompress", *common, "-o", f"{tmp}/out/", *lats]
            t_d = min(_timed(lambda cmd=decompress: subprocess.run(cmd, check=True)) for _ in range(repeat))
        out[f"{name}compress_s"], out[f"{name}decompress_s"] = t_c, t_d
    n = len(files)
    out["compress_s_per_file"], out["decompress_s_per_file"] = out["compress_s"] / n, out["decompress_s"] / n
    if n > 1:
        for k in ("compress", "decompress"):
            out[f"{k}_s_per_further_file"] = (out[f"{k}_s"] - out[f"one_{k}_s"]) / (n - 1)
    return out


def _fastest(run, repeat: int):
    """The fastest of `repeat` runs of run() -> (seconds, ...): on a shared machine the others
    measure the neighbours as much as the code."""
    return min((run() for _ in range(repeat)), key=lambda r: r[0])


def bench_codec(files: list[Path], quality: int, threads: int, repeat: int = 1) -> dict:
    cod = Codec(device="cpu", threads=threads)
    raw = [f.read_bytes() for f in files]
    cod.compress(images.open_image(raw[0]).image, quality)  # warm-up: session creation

    def encode_all():
        cod.timings = {}
        pixels, io_enc, lats = 0, 0.0, []
        t_enc = time.perf_counter()
        for data in raw:
            t0 = time.perf_counter()
            im = images.open_image(data).image
            io_enc += time.perf_counter() - t0
            pixels += im.size[0] * im.size[1]
            lats.append(cod.compress(im, quality))
        return time.perf_counter() - t_enc, dict(cod.timings), io_enc, pixels, lats

    t_enc, enc, io_enc, pixels, lats = _fastest(encode_all, repeat)
    result = {
        "quality": quality,
        "bpp": sum(8 * len(x) for x in lats) / pixels,
        "encode": _split(pixels / 1e6, t_enc, enc, io_enc),
    }
    macs = cod.info.meta.get("macs_per_pixel", {})
    originals = [np.asarray(images.open_image(d).image.convert("RGB")) for d in raw]
    result["decode"], result["decode_psnr"] = _decode_all(cod, lats, originals, pixels, repeat)
    result["decoder_macs_per_s"] = macs.get("decoder", 0) * pixels / result["decode"]["model_s"]
    return result


def _decode_all(
    cod: Codec, lats: list[bytes], originals: list[np.ndarray], pixels: int, repeat: int = 1
) -> tuple[dict, float]:
    """Decode split into phases, and the decoded images' mean PSNR."""
    cod.decompress(container.parse(lats[0]))  # warm-up: session creation

    def decode_all():
        cod.timings = {}
        io_dec, decoded = 0.0, []
        t_dec = time.perf_counter()
        for lat in lats:
            t0 = time.perf_counter()
            parsed = container.parse(lat)
            io_dec += time.perf_counter() - t0
            im = cod.decompress(parsed)
            t0 = time.perf_counter()
            images.encode_image(im, "PNG")
            io_dec += time.perf_counter() - t0
            decoded.append(im)
        return time.perf_counter() - t_dec, dict(cod.timings), io_dec, decoded

    t_dec, dec, io_dec, decoded = _fastest(decode_all, repeat)
    psnr = float(
        np.mean([images.psnr(np.asarray(d.convert("RGB")), o) for d, o in zip(decoded, originals, strict=True)])
    )
    return _split(pixels / 1e6, t_dec, dec, io_dec), psnr


def _split(mp: float, total: float, phases: dict, image_io: float) -> dict:
    model, entropy, transform = (phases.get(k, 0.0) for k in ("model", "entropy", "transform"))
    return {
        "mp_per_s": mp / total,
        "seconds": total,
        "model_s": model,
        "transform_s": transform,
        "entropy_s": entropy,
        "io_s": image_io,
        "other_s": max(0.0, total - model - transform - entropy - image_io),
    }


def bench_denoise(files: list[Path], threads: int, repeat: int = 1) -> dict:
    net = Denoiser(device="cpu", threads=threads)
    arrays = [np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255 for f in files]
    net.run_float(arrays[0][:64, :64], 25.0)
    dt = min(_timed(lambda: [net.run_float(a) for a in arrays]) for _ in range(repeat))
    pixels = sum(a.shape[0] * a.shape[1] for a in arrays)
    macs = net.info.meta.get("macs_per_pixel", {}).get("model", 0)
    return {"mp_per_s": pixels / 1e6 / dt, "seconds": dt, "macs_per_s": macs * pixels / dt}


def bench_pillow(files: list[Path]) -> dict:
    out = {}
    ims = [Image.open(f).convert("RGB") for f in files]
    mp = sum(im.size[0] * im.size[1] for im in ims) / 1e6
    for name, opts in {
        "JPEG q75": dict(format="JPEG", quality=75, optimize=True),
        "WebP q75": dict(format="WEBP", quality=75),
        "AVIF q60 speed 4": dict(format="AVIF", quality=60, speed=4),
    }.items():
        blobs = []
        t0 = time.perf_counter()
        for im in ims:
            buf = io.BytesIO()
            im.save(buf, **opts)
            blobs.append(buf.getvalue())
        t_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in blobs:
            Image.open(io.BytesIO(b)).load()
        t_dec = time.perf_counter() - t0
        out[name] = {"encode_mp_per_s": mp / t_enc, "decode_mp_per_s": mp / t_dec}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--quality", type=int, help="codec level (default: the model's default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=8, help="use at most this many images")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--repeat", type=int, default=3, help="time each pass this many times, keep the fastest")
    ap.add_argument(
        "--compressai-python",
        help="a Python with compressai: time its FactorizedPrior(128, 192) "
        "on the same images in this run (benchmarks/bench_compressai.py)",
    )
    ap.add_argument(
        "--compressai-from",
        type=Path,
        help="no compressai here: take its timings from an earlier run's --json on the same images "
        "and machine (reported as such)",
    )
    args = ap.parse_args(argv)

    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in images.IMAGE_SUFFIXES)[: args.limit]
    if not files:
        sys.exit(f"no images in {args.folder}")
    quality = args.quality or default_quality(Codec(device="cpu"))
    aec = [sys.executable, "-m", "aecompress"]
    res = {
        "images": len(files),
        "threads": args.threads,
        "numpy_matmul_macs_per_s": matmul_rate(args.threads),  # again at the end: the faster counts
        "startup_version_s": startup([*aec, "--version"]),
        "startup_compress_s": startup(
            [
                *aec,
                "compress",
                "-f",
                "--threads",
                str(args.threads),
                "-q",
                str(quality),
                str(files[0]),
                "-o",
                "/dev/null" if sys.platform != "win32" else "NUL",
            ],
            repeat=3,
        ),
        "codec": bench_codec(files, quality, args.threads, args.repeat),
        "batch": bench_batch(aec, files, quality, args.threads, args.repeat),
        "denoise": bench_denoise(files, args.threads, args.repeat),
        "pillow": bench_pillow(files),
    }
    if args.compressai_from and not args.compressai_python:
        earlier = json.loads(args.compressai_from.read_text()).get("compressai")
        if earlier:
            res["compressai"] = {**earlier, "from": str(args.compressai_from)}
    if args.compressai_python:
        script = Path(__file__).resolve().parent / "bench_compressai.py"
        out = subprocess.run(
            [
                args.compressai_python,
                str(script),
                "--threads",
                str(args.threads),
                "--repeat",
                str(args.repeat),
                *map(str, files),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        res["compressai"] = json.loads(out.strip().splitlines()[-1])
    res["numpy_matmul_macs_per_s"] = max(res["numpy_matmul_macs_per_s"], matmul_rate(args.threads))
    print(table(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


def table(r: dict) -> str:
    mm = r["numpy_matmul_macs_per_s"]
    c = r["codec"]
    lines = [
        f"{r['images']} images, {r['threads']} threads; NumPy float32 matmul: {mm / 1e9:.1f} GMAC/s",
        f"start-up: aec --version {r['startup_version_s']:.3f} s, one aec compress {r['startup_compress_s']:.3f} s",
        "",
        f"| aec q{c['quality']} ({c['bpp']:.3f} bpp) | MP/s | wavelet s | entropy s | post-filter s | image I/O s "
        "| other s |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in ("encode", "decode"):
        s = c[k]
        lines.append(
            f"| {k} | {s['mp_per_s']:.2f} | {s['transform_s']:.3f} | {s['entropy_s']:.3f} | {s['model_s']:.3f} "
            f"| {s['io_s']:.3f} | {s['other_s']:.3f} |"
        )
    d = r["denoise"]
    if "batch" in r:
        b = r["batch"]
        lines.append(
            f"one aec process over all {r['images']} files, per file: compress {b['compress_s_per_file']:.3f} s, "
            f"decompress {b['decompress_s_per_file']:.3f} s"
        )
        if "compress_s_per_further_file" in b:
            lines.append(
                f"each further file of the batch (start-up left out): compress "
                f"{b['compress_s_per_further_file']:.3f} s, decompress {b['decompress_s_per_further_file']:.3f} s"
            )
    lines += [
        "",
        f"model rate: post-filter {c['decoder_macs_per_s'] / 1e9:.1f} GMAC/s "
        f"({c['decoder_macs_per_s'] / mm:.0%} of matmul), "
        f"denoiser {d['macs_per_s'] / 1e9:.1f} GMAC/s ({d['macs_per_s'] / mm:.0%})",
        f"aec denoise: {d['mp_per_s']:.2f} MP/s",
        "",
        "| Pillow | encode MP/s | decode MP/s |",
        "|---|---|---|",
    ]
    for name, p in r["pillow"].items():
        lines.append(f"| {name} | {p['encode_mp_per_s']:.2f} | {p['decode_mp_per_s']:.2f} |")
    if "compressai" in r:
        ref, n = r["compressai"], r["images"]
        if "from" in ref:
            lines += ["", f"CompressAI timings from {ref['from']} (an earlier run on the same images)"]
        ref_c, ref_d = ref["compress_s"], ref["decompress_s"]
        lines += [
            "",
            "| per image, s | aec | CompressAI FactorizedPrior(128,192) | speed-up |",
            "|---|---|---|---|",
        ]
        # CompressAI's script times a PIL image to bytes and back: the like-for-like rows leave
        # out aec's image-file reading and writing, the others include them.
        for name, key in (("compress", "encode"), ("decompress", "decode")):
            whole = c[key]["seconds"] / n
            bare = (c[key]["seconds"] - c[key]["io_s"]) / n
            ref = ref_c if key == "encode" else ref_d
            lines.append(f"| {name}, image <-> bytes | {bare:.3f} | {ref:.3f} | {ref / bare:.2f}x |")
            lines.append(f"| {name}, with the image file | {whole:.3f} | {ref:.3f} | {ref / whole:.2f}x |")
            further = r.get("batch", {}).get(f"{name}_s_per_further_file")
            if further:
                row = f"| {name}, each further file of an `aec` batch | {further:.3f} | {ref:.3f} |"
                lines.append(f"{row} {ref / further:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
