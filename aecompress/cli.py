"""The `aec` command line: expand inputs and outputs, run the jobs, report. No model logic here.

Heavy modules (NumPy, Pillow, ONNX Runtime) are imported inside the commands so that `aec --help`
and `aec --version` start instantly.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import click

from aecompress import __version__
from aecompress.batch import (
    Reporter,
    describe,
    expected_errors,
    run_jobs,
    say,
    source_size,
    stdout_reserved,
    threads_per_job,
)
from aecompress.models import TUNES

DEVICE = click.Choice(["auto", "cpu", "cuda"])
# decompress reads ahead through entropy decoding for images up to this size (see load()).
READ_AHEAD_MAX_PIXELS = 4_000_000
OUT_QUALITY = click.option(
    "--out-quality",
    type=click.IntRange(1, 100),
    default=95,
    show_default=True,
    help="quality of JPEG and WebP output images",
)


def _plan(inputs, output, rename, force):
    from aecompress import files

    try:
        if output and output.endswith(("/", os.sep)):
            # A trailing slash says "a folder": make it, as mkdir -p would.
            os.makedirs(output, exist_ok=True)
        elif len(inputs) == 1:
            files.make_parent(output)
        return files.plan(list(inputs), output, rename, force)
    except (files.OutputError, OSError) as e:
        raise click.UsageError(describe(e)) from None


def _refuse_terminal(out_fd: int | None) -> None:
    from aecompress import files

    try:
        files.refuse_terminal(out_fd)
    except files.OutputError as e:
        raise click.UsageError(str(e)) from None


def _open_pool(device, threads):
    """A codec pool for the run; a device that cannot work fails the whole run up front."""
    from aecompress import codec, runtime

    try:
        runtime.providers_for(device)
    except runtime.DeviceError as e:
        say(f"aec: {e}")
        sys.exit(2)
    return codec.CodecPool(device, threads)


common = [
    click.option("-o", "--output", help="output file, folder (ending in /), or - for stdout"),
    click.option("-f", "--force", is_flag=True, help="overwrite existing output files"),
    click.option(
        "--device",
        type=DEVICE,
        default="auto",
        show_default=True,
        help="where the model runs; auto uses CUDA only where it really works",
    ),
    click.option("--threads", type=click.IntRange(1, 1024), help="threads per model (default: all cores)"),
    click.option(
        "-j",
        "--jobs",
        type=click.IntRange(1, 256),
        default=1,
        show_default=True,
        help="files processed at once (the cores are shared between them)",
    ),
    click.option(
        "--max-pixels",
        type=click.IntRange(1),
        help="refuse images larger than this (default: Pillow's decompression-bomb limit, about 179 megapixels)",
    ),
    click.option("-v", "--verbose", count=True, help="report each file: size, rate, device, time"),
    click.option("--quiet", is_flag=True, help="print nothing but errors"),
]


def with_common(f):
    for opt in reversed(common):
        f = opt(f)
    return f


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aec", message="%(prog)s %(version)s")
def main() -> None:
    """Compress images with learned autoencoders, and denoise them."""
    _bound_heap()


def _bound_heap() -> None:
    """Large arrays straight from mmap, returned to the system when freed. glibc otherwise raises
    its mmap threshold after the first large free and keeps later temporaries on a heap that
    only grows: a 24-megapixel photo peaked at 0.96 GB instead of 0.72 GB. Linux/glibc only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-q", "--quality", type=int, help="quality level, 1 (smallest files) to the model's top")
@click.option("--model", help="codec model id (default: the manifest's default)")
@click.option(
    "--tune",
    type=click.Choice(TUNES),
    help="the model trained for this metric: psnr (exact detail) or ssim (structure, MS-SSIM); "
    "the file records it, decompress needs no flag",
)
@click.option(
    "--target-bpp",
    type=click.FloatRange(min=0, min_open=True),
    help="per image, the highest level within this many bits per pixel",
)
@click.option("--target-psnr", type=float, help="per image, the lowest level whose decoded PSNR (dB) reaches this")
@click.option(
    "--max-bytes", type=click.IntRange(min=1), help="per image, the highest level whose file fits in this many bytes"
)
@click.option(
    "--lossless", is_flag=True, help="store the exact samples (8 or 16 bits, grey, colour, alpha); no --quality"
)
@click.option(
    "--max-error",
    type=click.IntRange(1, 32767),
    help="near-lossless: every decoded colour sample within N of the input (alpha stays exact)",
)
@click.option(
    "--denoise",
    "clean_first",
    is_flag=True,
    help="clean noisy photographs with the default denoiser before coding: smaller files, no noise",
)
@click.option("--strip", is_flag=True, help="leave EXIF and XMP metadata out of the .lat (the ICC profile stays)")
@with_common
def compress(
    inputs,
    quality,
    model,
    tune,
    target_bpp,
    target_psnr,
    max_bytes,
    lossless,
    max_error,
    clean_first,
    strip,
    output,
    force,
    device,
    threads,
    jobs,
    max_pixels,
    verbose,
    quiet,
) -> None:
    """Compress images to .lat files (img.png -> img.lat)."""
    targets = {"target_bpp": target_bpp, "target_psnr": target_psnr, "max_bytes": max_bytes}
    targets = {k: v for k, v in targets.items() if v is not None}
    if len(targets) > 1 or (targets and quality is not None):
        raise click.UsageError("give one of -q, --target-bpp, --target-psnr, --max-bytes")
    integer = lossless or max_error is not None
    if integer and (targets or quality is not None or lossless == (max_error is not None)):
        raise click.UsageError("--lossless and --max-error take no -q or target, and exclude each other")
    if integer and clean_first:
        raise click.UsageError("--denoise is for lossy coding: a lossless file keeps the noise it is given")
    if integer and tune:
        raise click.UsageError("--tune is for lossy coding: a lossless file has no metric to favour")
    from aecompress import files, images, models

    if not integer:
        try:
            info = models.get(models.codec_id(model, tune), "codec")
        except (models.ModelError, ValueError) as e:
            raise click.UsageError(str(e)) from None
        levels = int(info.meta["levels"])
        if quality is None:
            quality = info.default_quality
        if not 1 <= quality <= levels:
            raise click.BadParameter(f"{quality} is not in 1..{levels}", param_hint="-q/--quality")
    plan = _plan(inputs, output, files.swap_suffix(".lat"), force)
    rep = Reporter(verbose, quiet, len(plan))
    to_stdout = any(j.target == "-" for j in plan)
    with stdout_reserved(to_stdout) as out_fd:
        _refuse_terminal(out_fd)
        net = None
        try:
            if integer:  # no network, no device
                from aecompress.lossless import LosslessCodec

                cod = LosslessCodec()
            else:
                cod = _open_pool(device, threads_per_job(threads, jobs)).get(info.id)
                if clean_first:
                    from aecompress.denoiser import Denoiser

                    net = Denoiser(None, device, threads_per_job(threads, jobs))
        except expected_errors() as e:
            say(f"aec: {describe(e)}")
            sys.exit(2)
        cod.strip = strip

        def load(job):
            raw = files.read_source(job.source)
            return images.read_samples(raw, max_pixels) if integer else images.open_image(raw, max_pixels)

        def encode(loaded) -> tuple[bytes, str, int]:
            """-> (.lat bytes, what was coded, pixels)."""
            if integer:
                h, w = loaded.array.shape[:2]
                how = f"max error {max_error}" if max_error else "lossless"
                return cod.compress(loaded, max_error or 0), f"{w}x{h} {loaded.mode} {loaded.bits}-bit, {how}", w * h
            image = net.denoise(loaded.image) if net is not None else loaded.image
            level = quality
            if targets:
                data, level = cod.compress_to(image, **targets)
            else:
                data = cod.compress(image, quality)
            w, h = loaded.image.size
            return data, f"{w}x{h} {loaded.image.mode}, q{level}", w * h

        def work(job, name, loaded):
            t0 = time.perf_counter()
            for n in loaded.notes:
                rep.note(name, n)
            data, what, pixels = encode(loaded)
            files.write_atomic(job.target, data, out_fd)
            rep.add_bytes(source_size(job.source), len(data))
            rep.info(
                f"{name} -> {'stdout' if job.target == '-' else job.target}: {what}, {len(data)} bytes, "
                f"{8 * len(data) / pixels:.3f} bpp, {time.perf_counter() - t0:.2f} s"
            )

        run_jobs(plan, work, rep, jobs, load)
    rep.finish()


SCALES = {"1": 0, "1/2": 1, "1/4": 2, "1/8": 3}


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["png", "tiff", "webp", "bmp", "ppm"]),
    help="image format when the output name does not say (default png)",
)
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="1",
    show_default=True,
    help="decode a preview of this size from the coarse levels only (sides rounded up; no post-filter)",
)
@OUT_QUALITY
@with_common
def decompress(
    inputs, fmt, scale, out_quality, output, force, device, threads, jobs, max_pixels, verbose, quiet
) -> None:
    """Decompress .lat files to images (img.lat -> img.png)."""
    from aecompress import api, container, files, images

    drop = SCALES[scale]
    suffix = "." + (fmt or "png")
    plan = _plan(inputs, output, files.swap_suffix(suffix), force)
    rep = Reporter(verbose, quiet, len(plan))
    to_stdout = any(j.target == "-" for j in plan)
    with stdout_reserved(to_stdout) as out_fd:
        _refuse_terminal(out_fd)
        pool = _open_pool(device, threads_per_job(threads, jobs))

        def load(job):
            limit = max_pixels or container.DEFAULT_MAX_PIXELS
            if drop and job.source != files.STDIO:
                # a preview of a lossless file reads only the prefix it needs
                lat = container.parse(api.read_lat(job.source, drop), limit, container.MAX_RESOLUTIONS)
            else:
                lat = container.parse(files.read_source(job.source), limit)
            if lat.header.integer or drop or lat.header.width * lat.header.height > READ_AHEAD_MAX_PIXELS:
                return lat
            # Read ahead further for photos of ordinary size: the next file is entropy-decoded
            # while this one is in the post-filter. Large ones wait, to bound memory.
            return pool.get(lat.header.model_id).unfiltered(lat)

        def work(job, name, lat):
            t0 = time.perf_counter()
            target_fmt = images.format_for(job.target) if job.target != "-" else (fmt or "png").upper()
            if not isinstance(lat, tuple) and lat.header.integer:
                s = pool.lossless(lat.header.model_id).decompress(lat, drop)

                def write_samples() -> None:
                    data = images.write_samples(s, target_fmt, out_quality)
                    files.write_atomic(job.target, data, out_fd)
                    rep.add_bytes(source_size(job.source), len(data))
                    h, w = s.array.shape[:2]
                    rep.info(
                        f"{name} -> {'stdout' if job.target == '-' else job.target}: {w}x{h} {s.mode} "
                        f"{s.bits}-bit, {lat.header.coding}, {time.perf_counter() - t0:.2f} s"
                    )

                return write_samples
            half = lat if isinstance(lat, tuple) else None
            lat = half[0] if half else lat
            cod = pool.get(lat.header.model_id)
            im = cod.finish(half) if half else cod.decompress(lat, drop)

            def write() -> None:
                data = images.encode_image(
                    im,
                    target_fmt,
                    out_quality,
                    icc_profile=im.info.get("icc_profile"),
                    exif=im.info.get("exif"),
                    xmp=im.info.get("xmp"),
                )
                files.write_atomic(job.target, data, out_fd)
                rep.add_bytes(source_size(job.source), len(data))
                rep.info(
                    f"{name} -> {'stdout' if job.target == '-' else job.target}: {im.size[0]}x{im.size[1]} "
                    f"{im.mode}, "
                    + (f"post-filter on {cod.provider}, " if not drop else f"preview 1/{1 << drop}, ")
                    + f"{time.perf_counter() - t0:.2f} s"
                )

            return write

        run_jobs(plan, work, rep, jobs, load)
    rep.finish()


def _wavelets(lat) -> str:
    """Version 4's one kernel, or version 5's per plane and level, runs counted (coarsest first)."""
    from aecompress import container, lossless_coder

    h = lat.header
    if h.kernel != container.ADAPTIVE:
        return f"wavelet {h.kernel}"
    names = {"L": ["L"], "LA": ["L", "A"], "RGB": ["Y", "Cb", "Cr"], "RGBA": ["Y", "Cb", "Cr", "A"]}[h.mode]
    try:
        levels = [lossless_coder.section_kernels(sec, len(names)) for sec in lat.sections[1:]]
    except lossless_coder.LosslessError as e:
        raise container.FormatError(str(e)) from None
    if not levels:
        return "no wavelet levels"
    parts = []
    for i, plane in enumerate(names):
        runs = [(k, len(list(g))) for k, g in itertools.groupby(lv[i] for lv in levels)]
        parts.append(f"{plane} " + " ".join(k if n == 1 else f"{k} x{n}" for k, n in runs))
    return "wavelets (coarsest first) " + ", ".join(parts)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
def info(inputs) -> None:
    """Describe .lat files: geometry, quality, model, sizes."""
    from aecompress import container, files

    rep = Reporter(0, False)

    def work(job, name, _):
        data = files.read_source(job.source)
        lat = container.parse(data)
        h = lat.header
        if h.integer:
            how = "lossless" if h.coding == "lossless" else f"near-lossless, max error {h.max_error}"
            click.echo(
                f"{name}: .lat v{h.version}, {h.width}x{h.height} {h.mode} {h.bits}-bit, {how}, "
                f"{_wavelets(lat)}, model {h.model_id} ({h.model_hash.hex()[:12]}), "
                f"{len(data)} bytes ({8 * len(data) / (h.width * h.height):.4f} bpp), "
                f"resolutions (coarsest first) " + " ".join(str(len(x)) for x in lat.sections) + " bytes"
            )
            return
        click.echo(
            f"{name}: .lat v{h.version}, {h.width}x{h.height} {h.mode}, lossy, quality {h.quality}, "
            f"model {h.model_id} ({h.model_hash.hex()[:12]}{_tuned_for(h.model_id)}), "
            f"{len(data)} bytes ({8 * len(data) / (h.width * h.height):.4f} bpp), "
            f"payload {len(lat.payload)} bytes" + (f", alpha {len(lat.alpha)} bytes" if lat.alpha else "")
        )

    from aecompress.files import Job

    run_jobs([Job(i, "") for i in inputs], work, rep)
    rep.finish()


def _tuned_for(model_id: str) -> str:
    """', tuned for METRIC' where this aec knows the codec model and its metric."""
    from aecompress import models

    try:
        tune = models.get(model_id, "codec").meta.get("tune")
    except models.ModelError:
        return ""
    return f", tuned for {tune}" if tune else ""


class SigmaParam(click.ParamType):
    name = "auto|N"

    def convert(self, value, param, ctx):
        if value is None or value == "auto":
            return None
        try:
            v = float(value)
        except ValueError:
            self.fail(f"{value!r} is neither 'auto' nor a number", param, ctx)
        if not 0 <= v <= 255:
            self.fail(f"{v} is outside 0..255", param, ctx)
        return v


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "--sigma",
    type=SigmaParam(),
    default="auto",
    show_default=True,
    help="strength: auto (default) lets the network judge each image's noise, whatever its kind; "
    "N steers it as if the noise had standard deviation N on the 0-255 scale (larger removes more)",
)
@click.option(
    "--tile",
    type=click.IntRange(64, 1 << 16),
    default=704,  # denoiser.DEFAULT_TILE, not imported here so that --help stays instant
    show_default=True,
    help="tile size in pixels (images of no more pixels than a tile and its halo go whole); bounds memory",
)
@click.option("--model", help="denoiser model id (default: the manifest's default)")
@OUT_QUALITY
@with_common
def denoise(
    inputs, sigma, tile, model, out_quality, output, force, device, threads, jobs, max_pixels, verbose, quiet
) -> None:
    """Remove noise from images (img.png -> img.denoised.png, or into -o DIR/)."""
    from aecompress import files, images
    from aecompress.denoiser import Denoiser
    from aecompress.noise_level import estimate_sigma

    # Beside the input the name must differ from it: NAME.denoised.EXT; in a folder, NAME.EXT.
    beside = output is None
    plan = _plan(inputs, output, lambda p: p.stem + (".denoised" if beside else "") + (p.suffix or ".png"), force)
    rep = Reporter(verbose, quiet, len(plan))
    to_stdout = any(j.target == "-" for j in plan)
    with stdout_reserved(to_stdout) as out_fd:
        _refuse_terminal(out_fd)
        _open_pool(device, threads)
        try:
            net = Denoiser(model, device, threads_per_job(threads, jobs))
        except expected_errors() as e:
            say(f"aec: {describe(e)}")
            sys.exit(2)

        def load(job):
            return images.read_pixels(files.read_source(job.source), max_pixels)

        def work(job, name, px):
            t0 = time.perf_counter()
            fmt = images.format_for(job.target) if job.target != "-" else "PNG"
            for n in px.notes:
                rep.note(name, n)
            level = sigma if sigma is not None else estimate_sigma(px.color * 255.0)
            px.color = net.run_float(px.color, level, tile)

            def write() -> None:
                files.write_atomic(job.target, images.write_pixels(px, fmt, out_quality), out_fd)
                h, w = px.color.shape[:2]
                dt = time.perf_counter() - t0
                rep.info(
                    f"{name} -> {'stdout' if job.target == '-' else job.target}: {w}x{h}, {px.bits}-bit, "
                    f"sigma {level:.1f}{'' if sigma is not None else ' (estimated)'}, {net.provider}, "
                    f"{dt:.2f} s, {w * h / 1e6 / dt:.2f} MP/s"
                )

            return write

        run_jobs(plan, work, rep, jobs, load)
    rep.finish()
