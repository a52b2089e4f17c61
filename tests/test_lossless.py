"""The integer path: lossless and near-lossless coding, previews, the version 4 container."""

import io
from pathlib import Path

import numpy as np
import pytest
from conftest import corruptions, run_aec, smooth_image
from PIL import Image

import aecompress
from aecompress import container, lossless, lossless_coder, reversible, wavelet
from aecompress.api import read_lat, scale_levels

RNG = np.random.default_rng(5)
DATA = Path(__file__).parent / "data"


def photo(h: int, w: int, channels: int = 3, bits: int = 8, seed: int = 0) -> np.ndarray:
    """Photograph-like samples with noise (lossless coding's hard part) at any depth."""
    a = smooth_image(w, h, seed).astype(np.int64)
    if bits == 16:
        a = a * 257 + np.random.default_rng(seed).integers(0, 257, a.shape)
    dtype = np.uint16 if bits == 16 else np.uint8
    if channels == 1:
        return a[..., 1].astype(dtype)
    extra = [np.full(a.shape[:2] + (1,), (1 << bits) - 1, np.int64)] if channels == 4 else []
    out = np.concatenate([a] + extra, axis=2) if channels >= 3 else np.stack([a[..., 1], a[..., 0]], axis=2)
    if channels == 4:
        out[: h // 2, :, 3] = (1 << bits) // 3  # a real alpha plane, not constant
    return out.astype(dtype)


@pytest.mark.parametrize("kernel", reversible.KERNELS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (2, 3), (7, 5), (33, 17), (64, 96)])
def test_reversible_wavelet_is_exact_on_any_size_and_depth(kernel, shape):
    x = RNG.integers(0, 1 << 16, shape + (3,))
    levels = wavelet.levels_for(*shape)
    planes = reversible.rct_forward(x)
    bands = [reversible.forward(p, levels, kernel) for p in planes]
    assert bands[0][0].shape == wavelet.band_shapes(*shape, levels)[0]
    back = reversible.rct_inverse(*[reversible.inverse(b, kernel=kernel) for b in bands])
    assert np.array_equal(back, x)


def test_kernels_may_differ_per_level_and_still_invert_exactly():
    x = RNG.integers(0, 1 << 8, (45, 70))
    kernels = ["13/7-T", "5/3", "9/7-M", "13/7-T", "5/3"]  # coarsest first
    bands = reversible.forward(x, 5, kernels)
    assert np.array_equal(reversible.inverse(bands, kernel=kernels), x)
    assert not np.array_equal(bands[-1][0], reversible.forward(x, 5, "9/7-M")[-1][0])


def test_the_encoder_keeps_the_97m_unless_another_kernel_clearly_pays():
    # smooth shading favours the four-tap predictor, salt-and-pepper the two-tap one
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = 3 * xx * xx + 2 * yy * yy  # the (9,7)-M predicts a quadratic exactly, the 5/3 does not
    assert lossless.forward_adaptive(smooth, 4, [])[1][-1] == "9/7-M"
    spikes = (RNG.random((64, 64)) < 0.05) * 200  # isolated points: the shorter kernel spreads them less
    assert lossless.forward_adaptive(spikes, 4, [])[1][-1] == "5/3"


def test_chroma_bands_are_coded_as_their_difference_from_luma_and_cb():
    planes = [lossless_coder.Plane(k, 0) for k in range(3)]
    ctx = lossless_coder._Context(planes, 1)
    y = RNG.integers(-50, 50, (8, 8))
    cb = y // 2 + RNG.integers(-1, 2, (8, 8))
    cr = cb + RNG.integers(-1, 2, (8, 8))
    bands = [[None, (b, b, b)] for b in (y, cb, cr)]
    (ry, sy), (rcb, scb), (rcr, scr) = lossless_coder._residuals(bands, planes, ctx, 1, 0)
    assert sy == [] and ry is y
    assert [lossless_coder.SLOPES[i] for i in scb] == [4] and np.abs(rcb).max() <= 2
    assert len(scr) == 2 and np.abs(rcr).sum() < np.abs(cr - cb).sum() + 1


@pytest.mark.parametrize(
    "name, source",
    [
        ("golden-lossless-v4", "golden.png"),
        ("golden16-lossless-v4", "golden16.png"),
        ("golden-maxerr2-v4", "golden.png"),
    ],
)
def test_files_of_05_version_4_still_decode(name, source):
    data = (DATA / f"{name}.lat").read_bytes()
    assert container.parse(data).header.version == 4
    out = aecompress.decompress(data, output="numpy")
    ref = np.asarray(Image.open(DATA / source))
    ref = ref[..., :3] if ref.ndim == 3 else ref
    assert out.dtype == ref.dtype and out.shape == ref.shape
    if "maxerr2" in name:
        assert np.abs(out.astype(int) - ref).max() <= 2
    else:
        assert np.array_equal(out, ref)


@pytest.mark.parametrize(
    "h, w, channels, bits",
    [(48, 64, 3, 8), (31, 45, 4, 8), (40, 40, 1, 8), (17, 23, 2, 8), (36, 52, 3, 16), (9, 11, 1, 16), (1, 1, 3, 8)],
)
def test_lossless_round_trip_is_bit_exact(h, w, channels, bits):
    a = photo(h, w, channels, bits)
    data = aecompress.compress(a, lossless=True)
    out = aecompress.decompress(data, output="numpy")
    assert out.dtype == a.dtype and np.array_equal(out, a)
    hd = container.parse(data).header
    assert (hd.version, hd.coding, hd.bits) == (container.INTEGER_VERSION, "lossless", bits)


def test_lossless_beats_png_on_a_photo():
    # smooth shading, edges and sensor-like noise common to the channels, as in photographs
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    base = np.stack([120 + 60 * np.sin(xx / 30 + c) * np.cos(yy / 25) for c in range(3)], axis=2)
    base[(xx - 64) ** 2 + (yy - 48) ** 2 < 900] *= 0.6
    noise = np.random.default_rng(2).normal(0, 2, base.shape[:2] + (1,))
    a = np.clip(np.rint(base + noise), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", optimize=True)
    assert len(aecompress.compress(a, lossless=True)) < 0.9 * buf.tell()


@pytest.mark.parametrize("n", [1, 2, 7])
def test_near_lossless_bound_holds_on_every_sample_and_alpha_stays_exact(n):
    a = photo(45, 61, 4)
    data = aecompress.compress(a, max_error=n)
    out = aecompress.decompress(data, output="numpy")
    assert np.abs(out[..., :3].astype(int) - a[..., :3]).max() <= n
    assert np.array_equal(out[..., 3], a[..., 3])
    assert len(data) < len(aecompress.compress(a, lossless=True))


def test_near_lossless_bound_holds_at_the_ends_of_the_range():
    a = np.array([[0, 1, 2, 253, 254, 255], [255, 255, 0, 0, 128, 127]], np.uint8)
    for n in (1, 2, 3):
        out = aecompress.decompress(aecompress.compress(a, max_error=n), output="numpy")
        assert np.abs(out.astype(int) - a).max() <= n and out.dtype == np.uint8
    b = np.array([[0, 65535, 65534, 1000]], np.uint16)
    out = aecompress.decompress(aecompress.compress(b, max_error=100), output="numpy")
    assert np.abs(out.astype(int) - b).max() <= 100


@pytest.mark.parametrize("scale, drop", [(1, 0), (0.5, 1), ("0.25", 2), (1 / 8, 3)])
def test_scale_levels(scale, drop):
    assert scale_levels(scale) == drop


@pytest.mark.parametrize("bad", [0, 2, 0.3, "x", None])
def test_bad_scales_are_refused(bad):
    with pytest.raises(ValueError):
        scale_levels(bad)


def test_a_preview_reads_only_a_prefix_and_is_the_low_band(tmp_path):
    a = photo(100, 150)
    path = tmp_path / "a.lat"
    path.write_bytes(aecompress.compress(a, lossless=True))
    prefix = read_lat(path, 3)
    assert len(prefix) < 0.1 * path.stat().st_size
    thumb = aecompress.decompress(path, scale=1 / 8, output="numpy")
    assert thumb.shape == (13, 19, 3)  # sides rounded up
    # exactly the low band the encoder's transform made, back through the colour transform
    levels = wavelet.levels_for(100, 150)
    made = [lossless.forward_adaptive(p, levels, []) for p in reversible.rct_forward(a)]
    ref = [reversible.inverse(b, levels - 3, kernels) for b, kernels in made]
    assert np.array_equal(thumb, np.clip(reversible.rct_inverse(*ref), 0, 255))
    for scale, shape in ((1 / 2, (50, 75, 3)), (1 / 4, (25, 38, 3))):
        assert aecompress.decompress(path, scale=scale, output="numpy").shape == shape


def test_previews_of_lossy_files_and_of_tiny_images():
    lossy = aecompress.compress(smooth_image(90, 60), 5)
    assert aecompress.decompress(lossy, scale=1 / 4).size == (23, 15)
    tiny = aecompress.compress(photo(3, 5), lossless=True)
    assert aecompress.decompress(tiny, scale=1 / 8, output="numpy").shape[:2] == (1, 1)


def test_sixteen_bit_grey_pil_and_png_bytes_round_trip():
    a = photo(20, 30, 1, 16)
    im = Image.fromarray(a)
    assert im.mode == "I;16"
    out = aecompress.decompress(aecompress.compress(im, lossless=True))
    assert out.mode == "I;16" and np.array_equal(np.asarray(out), a)
    rgb16 = photo(20, 30, 3, 16)
    png = aecompress.decompress(aecompress.compress(rgb16, lossless=True), output="png")
    assert np.array_equal(aecompress.decompress(aecompress.compress(png, lossless=True), output="numpy"), rgb16)
    with pytest.raises(ValueError, match="16-bit colour"):
        aecompress.decompress(aecompress.compress(rgb16, lossless=True))


def test_lossless_refuses_float_arrays_and_mixed_options():
    with pytest.raises(ValueError, match="uint8 or uint16"):
        aecompress.compress(np.zeros((4, 4, 3), np.float32), lossless=True)
    with pytest.raises(ValueError):
        aecompress.compress(photo(8, 8), 5, lossless=True)
    with pytest.raises(ValueError):
        aecompress.compress(photo(8, 8), lossless=True, max_error=2)


def test_a_damaged_lossless_file_is_refused_never_decoded_wrong():
    data = bytearray(aecompress.compress(photo(40, 50), lossless=True))
    for pos in (len(data) // 2, len(data) - 3, 30):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(container.FormatError):
            container.parse(bytes(bad))
    with pytest.raises(container.FormatError):
        container.parse(bytes(data[:-5]))
    future = bytearray(data)
    future[4] = 9
    with pytest.raises(container.FormatError, match="newer aecompress"):
        container.parse(bytes(future))


def test_cli_lossless_sixteen_bit_png_and_info(tmp_path):
    import png

    a = photo(24, 40, 3, 16)
    src = tmp_path / "deep.png"
    with open(src, "wb") as f:
        png.Writer(40, 24, greyscale=False, bitdepth=16).write(f, a.reshape(24, -1))
    r = run_aec("compress", "--lossless", str(src))
    assert r.returncode == 0, r.stderr
    lat = tmp_path / "deep.lat"
    info = run_aec("info", str(lat)).stdout.decode()
    assert "lossless" in info and "16-bit" in info and ".lat v5" in info
    # the kernels each plane used, level by level (4 levels for 24 x 40), as the sections say
    parsed = container.parse(lat.read_bytes())
    kernels = [lossless_coder.section_kernels(sec, 3) for sec in parsed.sections[1:]]
    assert len(kernels) == 4 and f"Y {kernels[0][0]}" in info
    old = run_aec("info", str(DATA / "golden-lossless-v4.lat")).stdout.decode()
    assert ".lat v4" in old and "wavelet 9/7-M" in old
    r = run_aec("decompress", str(lat), "-o", str(tmp_path / "out.png"))
    assert r.returncode == 0, r.stderr
    w, h, rows, meta = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert meta["bitdepth"] == 16 and np.array_equal(np.vstack(list(rows)).reshape(24, 40, 3), a)


def test_cli_near_lossless_preview_and_usage_errors(tmp_path, photo):
    r = run_aec("compress", "--max-error", "2", str(photo), "-o", str(tmp_path / "n.lat"))
    assert r.returncode == 0, r.stderr
    assert "near-lossless, max error 2" in run_aec("info", str(tmp_path / "n.lat")).stdout.decode()
    r = run_aec("decompress", "--scale", "1/8", str(tmp_path / "n.lat"), "-o", str(tmp_path / "t.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "t.png").size == (12, 8)
    r = run_aec("compress", "--lossless", "-q", "5", str(photo))
    assert r.returncode != 0 and b"--lossless" in r.stderr


def test_cli_damaged_lossless_file_gives_one_line_and_no_output(tmp_path, photo):
    lat = tmp_path / "p.lat"
    assert run_aec("compress", "--lossless", str(photo), "-o", str(lat)).returncode == 0
    data = bytearray(lat.read_bytes())
    data[len(data) // 2] ^= 1
    lat.write_bytes(bytes(data))
    r = run_aec("decompress", str(lat), "-o", str(tmp_path / "x.png"))
    assert r.returncode != 0 and not (tmp_path / "x.png").exists()
    lines = r.stderr.decode().strip().splitlines()
    assert lines and all(line.startswith("aec:") for line in lines) and "Traceback" not in r.stderr.decode()


def test_library_warnings_become_aec_lines_that_name_the_file(capsys):
    import warnings

    from aecompress import batch

    for verbose, shown in ((1, True), (0, False)):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            batch.Reporter(verbose, False)
            batch._in_file("odd.tif", lambda: warnings.warn("Corrupt EXIF data\n  more", UserWarning, stacklevel=1))
        err = capsys.readouterr().err
        assert err.strip() == ("aec: odd.tif: warning: Corrupt EXIF data more" if shown else "")


def test_libtiff_messages_never_reach_stderr_raw(tmp_path):
    """libtiff prints 'WEBP compression support is not configured.' from C for this file."""
    import struct

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "TIFF")
    b = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", b, 4)[0]
    for i in range(struct.unpack_from("<H", b, ifd)[0]):
        entry = ifd + 2 + 12 * i
        if struct.unpack_from("<H", b, entry)[0] == 259:  # compression: WEBP, which libtiff lacks here
            struct.pack_into("<H", b, entry + 8, 50001)
    src = tmp_path / "odd.tif"
    src.write_bytes(bytes(b))
    for flags in ([], ["--lossless"], ["-v"]):
        r = run_aec("compress", *flags, str(src), str(photo_file(tmp_path)), "-o", f"{tmp_path}/out/")
        lines = r.stderr.decode().splitlines()
        assert r.returncode == 1 and lines and all(line.startswith("aec:") for line in lines), lines
        assert (tmp_path / "out" / "p.lat").exists()  # the bad file did not stop the batch


def photo_file(tmp_path: Path) -> Path:
    """A small good image to go beside an odd one."""
    p = tmp_path / "p.png"
    Image.fromarray(photo(16, 24)).save(p)
    return p


def test_sixteen_bit_pngs_obey_the_pixel_limit_before_any_decoding(tmp_path):
    import png

    src = tmp_path / "deep.png"
    with open(src, "wb") as f:
        png.Writer(40, 24, greyscale=False, bitdepth=16).write(f, photo(24, 40, 3, 16).reshape(24, -1))
    for cmd in (["compress", "--lossless"], ["denoise"]):
        r = run_aec(*cmd, "--max-pixels", "100", str(src), "-o", str(tmp_path / "out.x"))
        assert r.returncode == 1 and r.stderr.decode().startswith("aec:") and b"too large" in r.stderr, r.stderr


def test_the_coders_activity_equals_the_fitting_one():
    """The coder computes activities view by view (fast); the table fitting from the features
    (training/lossless_model.py). They must agree exactly, or the tables fit another coder."""
    from aecompress import lossless_coder as lc

    rng = np.random.default_rng(1)
    weights = rng.integers(0, lc.MAX_WEIGHT + 1, (lc.CLASSES, lc.PASSES, len(lc.FEATURES)))
    a = rng.integers(0, 256, (37, 53, 3))
    levels = wavelet.levels_for(37, 53)
    lows = [[], [], []]
    bands = [lossless.forward_adaptive(p, levels, lw)[0] for p, lw in zip(reversible.rct_forward(a), lows, strict=True)]
    planes = [lc.Plane(0, 0), lc.Plane(1, 0), lc.Plane(2, 0)]
    ctx = lc._Context(planes, levels)
    checked = 0
    for k in range(1, levels + 1):
        ctx.start_level(k, [lows[c][k - 1] for c in range(3)])
        for o in range(3):
            for c, (v, _) in enumerate(lc._residuals(bands, planes, ctx, k, o)):
                band, cls = ctx.band(c, k, o, v.shape)
                for p in lc.passes_for(v.shape):
                    hp = np.abs(band.take(v, p).astype(np.int64))
                    slow = lc.activity(weights[cls, p], band.features(p), hp.size)
                    assert np.array_equal(slow, band.activity(weights[cls, p], p))
                    band.done(p, hp)
                    checked += hp.size
                ctx.finish(c, k, o, band)
    assert checked == sum(b.size for ch in bands for t in ch[1:] for b in t)


def test_damaged_lossless_files_are_refused_and_crafted_ones_fail_cleanly():
    """Damage is caught by the sections' checksums; payloads rewritten with valid checksums
    (a crafted file) must still end in a one-line error or in some picture, never a crash."""
    a = photo(29, 45, 4)
    data = aecompress.compress(a, lossless=True)
    codec = lossless.LosslessCodec()
    for kind, bad in corruptions(data, 400):
        try:
            out = codec.decompress(container.parse(bad))
        except container.FormatError:
            continue
        assert np.array_equal(out.array, a), f"{kind}: a damaged file decoded to a different picture"
    lat = container.parse(data)
    rng = np.random.default_rng(3)
    refused = 0
    for trial in range(300):
        sections = list(lat.sections)
        i = int(rng.integers(1, len(sections)))
        b = bytearray(sections[i])
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, len(b)))
            b[pos] = int(rng.integers(0, 256))
        if trial % 3 == 0:
            b = b[: int(rng.integers(0, len(b) + 1))]
        sections[i] = bytes(b)
        crafted = container.LatFile(lat.header, b"", None, lat.icc, lat.exif, lat.xmp, tuple(sections)).pack()
        try:
            codec.decompress(container.parse(crafted))
        except container.FormatError:
            refused += 1
    assert refused > 100
