"""Rate-distortion evaluation of the installed `aec` against JPEG, WebP, JPEG 2000 and AVIF (Pillow).

    python -m training.evaluate --data DIR [--out results/kodak] [--levels 1,2,...]

Runs `aec compress`/`aec decompress` at every quality level over the folder (one process per
level, as a user would batch it), takes bits per pixel from the whole .lat file's size, PSNR
over RGB and MS-SSIM over RGB (pytorch_msssim), averages per image, and does the same for the
reference codecs at quality 5..95 (JPEG 2000: OpenJPEG's 9/7 with its colour transform, at
compression ratios 200..3). BD-rates on MS-SSIM are taken on -10 log10(1 - mean MS-SSIM). Writes
rd.json, rd.md (tables with BD-rates against JPEG and of aec against each reference, for both
metrics) and rd.png (plots) into --out. --tune ssim evaluates the MS-SSIM-tuned model.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from training.data import list_images
from training.rd import bd_rate, ms_ssim, psnr, ssim_db

REFERENCE_QUALITIES = list(range(5, 100, 5))
J2K_RATIOS = [200, 150, 100, 75, 50, 35, 25, 18, 12, 9, 6, 4.5, 3]
REFERENCES = {
    "JPEG": dict(format="JPEG", optimize=True),
    "WebP": dict(format="WEBP", method=6),
    "JPEG 2000": dict(format="JPEG2000", quality_mode="rates", irreversible=True, mct=1),
    "AVIF": dict(format="AVIF", speed=4),
}


def settings(codec: str) -> list:
    return J2K_RATIOS if codec == "JPEG 2000" else REFERENCE_QUALITIES


def save_options(codec: str, setting) -> dict:
    if codec == "JPEG 2000":
        return {**REFERENCES[codec], "quality_layers": [setting]}
    return {**REFERENCES[codec], "quality": setting}


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def reference_curve(files: list[Path], codec: str, cache: dict) -> list[dict]:
    """Mean RD points of one reference codec at every quality, cached by image content."""
    rows = []
    for q in settings(codec):
        pts = []
        for f in files:
            key = f"{hashlib.sha1(f.read_bytes()).hexdigest()}:{codec}:{q}"
            if len(cache.get(key, ())) < 3:  # entries of before MS-SSIM hold bpp and PSNR only
                cache[key] = reference_point(load(f), codec, q)
            pts.append(tuple(cache[key]))
        rows.append(_row(q, pts))
    return rows


def reference_point(img: np.ndarray, codec: str, quality: int) -> tuple[float, float, float]:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, **save_options(codec, quality))
    size = buf.tell()
    buf.seek(0)
    with Image.open(buf) as im:
        rec = np.asarray(im.convert("RGB"))
    return 8 * size / (img.shape[0] * img.shape[1]), psnr(img, rec), ms_ssim(img, rec)


def shrink(path: Path, factor: int, folder: Path) -> Path:
    with Image.open(path) as im:
        im = im.convert("RGB")
        small = im.resize((max(1, im.width // factor), max(1, im.height // factor)), Image.LANCZOS)
    out = folder / (path.stem + ".png")
    small.save(out)
    return out


def aec_points(
    files: list[Path], levels: list[int], aec: str, tune: str | None = None
) -> dict[int, list[tuple[float, float, float]]]:
    """RD points per level, through the installed command line as a user runs it."""
    out: dict[int, list[tuple[float, float, float]]] = {}
    tuning = ["--tune", tune] if tune else []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for lv in levels:
            lat_dir, png_dir = t / f"lat{lv}", t / f"png{lv}"
            lat_dir.mkdir()
            png_dir.mkdir()
            subprocess.run(
                [aec, "compress", "--quiet", *tuning, "-q", str(lv), "-o", f"{lat_dir}/", *map(str, files)],
                check=True,
            )
            lats = [lat_dir / (f.stem + ".lat") for f in files]
            subprocess.run([aec, "decompress", "--quiet", "-o", f"{png_dir}/", *map(str, lats)], check=True)
            pts = []
            for f, lat in zip(files, lats, strict=True):
                img = load(f)
                rec = load(png_dir / (f.stem + ".png"))
                pts.append((8 * lat.stat().st_size / (img.shape[0] * img.shape[1]), psnr(img, rec), ms_ssim(img, rec)))
            out[lv] = pts
            bpp, db, ms = np.mean(pts, axis=0)
            print(f"aec q{lv}: {bpp:.4f} bpp {db:.2f} dB MS-SSIM {ms:.4f}", file=sys.stderr)
    return out


PLAIN = "aec without post-filter"


def plain_curve(files: list[Path], levels: list[int], model: str | None = None) -> list[dict]:
    """The same files decoded by the plain wavelet decoder (the post-filter skipped): what the
    learned filter adds."""
    from aecompress import codec, container

    cod = codec.Codec(model, device="cpu")
    rows = []
    for lv in levels:
        pts = []
        for f in files:
            img = load(f)
            data = cod.compress(Image.fromarray(img), lv)
            rec = cod.reconstruct(cod.decode_bands(container.parse(data)), lv, img.shape[:2], filtered=False)
            pts.append((8 * len(data) / (img.shape[0] * img.shape[1]), psnr(img, rec), ms_ssim(img, rec)))
        rows.append(_row(lv, pts))
    return rows


def bd(ref: list[dict], test: list[dict], metric: str = "psnr") -> float:
    """BD-rate of test against ref on "psnr" or "msssim_db"."""
    r_ref, q_ref = [r["bpp"] for r in ref], [r[metric] for r in ref]
    return round(bd_rate(r_ref, q_ref, [r["bpp"] for r in test], [r[metric] for r in test]), 2)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", type=Path, default=Path("results/kodak"))
    ap.add_argument("--levels", help="comma-separated levels (default: all of the default model)")
    ap.add_argument("--aec", default=shutil.which("aec") or "aec", help="the aec executable")
    ap.add_argument("--tune", choices=["psnr", "ssim"], help="aec compress --tune (default: aec's default)")
    ap.add_argument("--no-references", action="store_true", help="skip JPEG/WebP/JPEG 2000/AVIF")
    ap.add_argument("--record", type=Path, help="write the aec curve into this manifest's default codec entry")
    ap.add_argument("--plain", action="store_true", help="also the curve without the post-filter (in-process)")
    ap.add_argument(
        "--downscale",
        type=int,
        default=1,
        help="evaluate on the images shrunk by this factor (Lanczos), smoother like photos downscaled for the web",
    )
    args = ap.parse_args(argv)

    files = list_images(args.data)
    if args.downscale > 1:
        scratch = Path(tempfile.mkdtemp(prefix="aec-eval-"))
        files = [shrink(f, args.downscale, scratch) for f in files]
    from aecompress import models

    info = models.get(models.tuned(args.tune) if args.tune else None, "codec")
    if args.levels:
        levels = [int(v) for v in args.levels.split(",")]
    else:
        levels = list(range(1, int(info.meta["levels"]) + 1))
    args.out.mkdir(parents=True, exist_ok=True)
    curves: dict[str, list[dict]] = {}
    pts = aec_points(files, levels, args.aec, args.tune)
    curves["aec"] = [_row(q, p) for q, p in pts.items()]
    if args.plain:
        curves[PLAIN] = plain_curve(files, levels, info.id)
    if not args.no_references:
        # Pillow's encoders are deterministic for a given version: their points are cached beside
        # the results so that re-evaluating a new model does not re-encode hundreds of references.
        cache_path = args.out / "reference_cache.json"
        cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
        for name in REFERENCES:
            curves[name] = reference_curve(files, name, cache)
            print(f"{name} done", file=sys.stderr)
        cache_path.write_text(json.dumps(cache))
    report = {"data": str(args.data), "images": len(files), "model": info.id, "curves": curves}
    for metric, suffix in (("psnr", ""), ("msssim_db", "_msssim")):
        vs_jpeg = {}
        if "JPEG" in curves:
            vs_jpeg = {name: bd(curves["JPEG"], rows, metric) for name, rows in curves.items() if name != "JPEG"}
        report["bd_rate_vs_jpeg" + suffix] = vs_jpeg
        report["aec_vs" + suffix] = {
            name: bd(rows, curves["aec"], metric) for name, rows in curves.items() if name != "aec"
        }
    (args.out / "rd.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "rd.md").write_text(markdown(report))
    plot(report, args.out / "rd.png")
    if args.record:
        record(
            args.record,
            "codec",
            {
                "rd": curves["aec"],
                "bd_rate_vs_jpeg": report["bd_rate_vs_jpeg"].get("aec"),
                "bd_rate_vs": report["aec_vs"],
                "msssim_bd_rate_vs_jpeg": report["bd_rate_vs_jpeg_msssim"].get("aec"),
                "msssim_bd_rate_vs": report["aec_vs_msssim"],
                "data": str(args.data),
            },
            info.id,
        )
    print(markdown(report))


def record(manifest: Path, kind: str, figures: dict, model_id: str | None = None) -> None:
    """Store evaluation figures in a model's manifest entry (default: the default model of that
    kind); they do not enter its hash."""
    data = json.loads(manifest.read_text())
    model_id = model_id or data["defaults"][kind]
    for entry in data["models"]:
        if entry["id"] == model_id:
            entry["kodak"] = figures
    manifest.write_text(json.dumps(data, indent=2) + "\n")


def _row(q: int, pts: list[tuple[float, ...]]) -> dict:
    bpp, db, ms = np.mean(pts, axis=0)
    return {
        "quality": q,
        "bpp": round(float(bpp), 4),
        "psnr": round(float(db), 3),
        "msssim": round(float(ms), 5),
        "msssim_db": round(ssim_db(float(ms)), 3),
    }


def markdown(report: dict) -> str:
    lines = [
        f"RD of `{report.get('model', 'aec')}` on {report['images']} images of `{report['data']}`"
        " (mean per image, PSNR and MS-SSIM over RGB)",
        "",
    ]
    aec = report["curves"]["aec"]
    lines += ["| aec level | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['quality']} | {r['bpp']:.3f} | {r['psnr']:.2f} | {r['msssim']:.4f} | {r['msssim_db']:.2f} |" for r in aec
    ]
    for label, suffix in (("PSNR", ""), ("MS-SSIM", "_msssim")):
        if not report["bd_rate_vs_jpeg" + suffix]:
            continue
        lines += ["", f"| codec | {label} BD-rate vs JPEG | aec's {label} BD-rate vs this codec |", "|---|---|---|"]
        vs = report["aec_vs" + suffix]
        lines += [f"| JPEG | 0 | {vs['JPEG']:+.1f}% |"] if "JPEG" in vs else []
        lines += [
            f"| {k} | {v:+.1f}% | {f'{vs[k]:+.1f}%' if k in vs else '-'} |"
            for k, v in report["bd_rate_vs_jpeg" + suffix].items()
        ]
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, key, label in zip(
        axes, ("psnr", "msssim_db"), ("PSNR RGB (dB)", "MS-SSIM RGB, -10 log10(1 - x)"), strict=True
    ):
        for name, rows in report["curves"].items():
            ax.plot([r["bpp"] for r in rows], [r[key] for r in rows], marker="o", ms=3, label=name)
        ax.set_xlim(0, 2.0)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.set_title(f"Rate-distortion, {report['images']} images")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
