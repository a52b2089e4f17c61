import os

import pytest
from conftest import run_aec, smooth_image
from PIL import Image

from aecompress import models


def test_version_and_help():
    r = run_aec("--version")
    assert r.returncode == 0 and r.stdout.startswith(b"aec ")
    assert run_aec("--help").returncode == 0


def test_compress_decompress_beside_input(photo):
    r = run_aec("compress", str(photo))
    assert r.returncode == 0, r.stderr
    lat = photo.with_suffix(".lat")
    assert lat.read_bytes()[:4] == b"AECL"
    # photo.png exists: decompress must not overwrite it
    r = run_aec("decompress", str(lat))
    assert r.returncode == 1 and b"exists" in r.stderr
    r = run_aec("decompress", str(lat), "-o", str(photo.parent / "back.png"))
    assert r.returncode == 0, r.stderr
    assert Image.open(photo.parent / "back.png").size == (96, 64)
    r = run_aec("decompress", "-v", str(lat), "-o", str(photo.parent / "v.png"))
    assert r.returncode == 0, r.stderr
    assert b"post-filter on cpu" in r.stderr


def test_stdin_to_stdout_pipeline(photo):
    r = run_aec("compress", "-", "-q", "1", input=photo.read_bytes())
    assert r.returncode == 0 and r.stdout[:4] == b"AECL", r.stderr
    lat = r.stdout
    r = run_aec("decompress", "-", input=lat)
    assert r.returncode == 0 and r.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    # stdout held only the data: anything a library printed went to stderr
    assert run_aec("compress", "-", "-q", "1", input=photo.read_bytes()).stdout == lat


def test_verbose_reports_device(photo):
    r = run_aec("compress", "-v", "-f", str(photo))
    assert r.returncode == 0 and b"bpp" in r.stderr
    r = run_aec("decompress", "-v", "-o", str(photo.parent / "d.png"), str(photo.with_suffix(".lat")))
    assert r.returncode == 0
    assert b"on cpu" in r.stderr or b"on cuda" in r.stderr


def test_quality_out_of_range_refused(photo):
    top = int(models.get().meta["levels"])
    for q in ("0", str(top + 1)):
        r = run_aec("compress", "-q", q, str(photo))
        assert r.returncode == 2 and b"Traceback" not in r.stderr
    assert not photo.with_suffix(".lat").exists()


def test_bad_inputs_one_line_no_partial_output(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    r = run_aec("compress", str(bad))
    assert r.returncode == 1
    assert len(r.stderr.decode().strip().splitlines()) == 1 and b"Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.png"]
    badlat = tmp_path / "bad.lat"
    badlat.write_bytes(b"AECL" + b"\0" * 40)
    r = run_aec("decompress", str(badlat), "-o", str(tmp_path / "x.png"))
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert not (tmp_path / "x.png").exists()


def test_batch_good_bad_good(tmp_path):
    names = []
    for i, ok in enumerate([True, False, True]):
        p = tmp_path / f"in{i}.png"
        if ok:
            Image.fromarray(smooth_image(30, 20, seed=i)).save(p)
        else:
            p.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        names.append(str(p))
    out = tmp_path / "out"
    r = run_aec("compress", *names, "-o", f"{out}/")
    assert r.returncode == 1
    assert sorted(os.listdir(out)) == ["in0.lat", "in2.lat"]
    assert b"1 of 3 files failed" in r.stderr


def test_failed_write_in_a_batch(tmp_path):
    """Outputs are written while the next file is decoded: a write that fails is still reported
    against its file, by the target's name, and the rest of the batch is written."""
    lats = []
    for i in range(3):
        p = tmp_path / f"in{i}.png"
        Image.fromarray(smooth_image(30, 20, seed=i)).save(p)
        assert run_aec("compress", "-q", "1", str(p)).returncode == 0
        lats.append(str(p.with_suffix(".lat")))
    out = tmp_path / "out"
    (out / "in1.png").mkdir(parents=True)  # in the way of the second output
    r = run_aec("decompress", "-f", *lats, "-o", f"{out}/")
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert f"{out / 'in1.png'}".encode() in r.stderr and b"1 of 3 files failed" in r.stderr
    assert sorted(os.listdir(out)) == ["in0.png", "in1.png", "in2.png"]
    assert (out / "in1.png").is_dir() and not list((out / "in1.png").iterdir())
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_outputs_get_ordinary_file_mode(photo):
    """Not the owner-only mode of the temporary file they are written to."""
    mask = os.umask(0o022)
    os.umask(mask)
    assert run_aec("compress", str(photo)).returncode == 0
    assert run_aec("decompress", "-f", str(photo.with_suffix(".lat"))).returncode == 0
    for out in (photo.with_suffix(".lat"), photo):
        assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_truncated_lat_refused(photo, tmp_path):
    assert run_aec("compress", str(photo)).returncode == 0
    data = photo.with_suffix(".lat").read_bytes()
    cut = tmp_path / "cut.lat"
    cut.write_bytes(data[: len(data) // 2])
    r = run_aec("decompress", str(cut))
    assert r.returncode == 1 and b"truncated" in r.stderr
    assert not (tmp_path / "cut.png").exists()


def test_info(photo):
    run_aec("compress", "-q", "2", str(photo))
    r = run_aec("info", str(photo.with_suffix(".lat")))
    assert r.returncode == 0 and b"96x64 RGB, lossy, quality 2" in r.stdout


def test_never_overwrites_input(photo):
    r = run_aec("compress", str(photo), "-o", str(photo), "-f")
    assert r.returncode == 1 and b"refusing to overwrite the input" in r.stderr


def test_one_output_file_for_many_inputs_is_usage_error(photo, tmp_path):
    other = tmp_path / "b.png"
    Image.fromarray(smooth_image(8, 8)).save(other)
    r = run_aec("compress", str(photo), str(other), "-o", str(tmp_path / "one.lat"))
    assert r.returncode == 2


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_devices(photo, device):
    r = run_aec("compress", "--device", device, "-f", str(photo))
    assert r.returncode == 0, r.stderr


def test_runtime_never_imports_torch(photo):
    code = (
        "import sys; from PIL import Image; import aecompress; "
        f"im = Image.open({str(photo)!r}); aecompress.decompress(aecompress.compress(im, 1)); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr


def test_cuda_demanded_where_absent_fails_up_front(photo):
    from aecompress import runtime

    try:
        runtime.providers_for("cuda")
        pytest.skip("CUDA is usable here")
    except runtime.DeviceError:
        pass
    r = run_aec("compress", "--device", "cuda", str(photo))
    assert r.returncode == 2 and b"cuda" in r.stderr.lower()
    assert len(r.stderr.decode().strip().splitlines()) == 1
    assert not photo.with_suffix(".lat").exists()


def test_parallel_jobs_give_identical_files(tmp_path):
    names = []
    for i in range(4):
        p = tmp_path / f"p{i}.png"
        Image.fromarray(smooth_image(40 + 8 * i, 30, seed=i)).save(p)
        names.append(str(p))
    assert run_aec("compress", *names, "-o", f"{tmp_path}/serial/").returncode == 0
    assert run_aec("compress", "-j", "3", *names, "-o", f"{tmp_path}/par/").returncode == 0
    assert run_aec("compress", "--threads", "1", *names, "-o", f"{tmp_path}/one/").returncode == 0
    for i in range(4):
        serial = (tmp_path / "serial" / f"p{i}.lat").read_bytes()
        assert (tmp_path / "par" / f"p{i}.lat").read_bytes() == serial
        assert (tmp_path / "one" / f"p{i}.lat").read_bytes() == serial


def test_max_pixels_refused_before_work(photo):
    r = run_aec("compress", "--max-pixels", "1000", str(photo))
    assert r.returncode == 1 and b"too large" in r.stderr
    assert run_aec("compress", str(photo)).returncode == 0
    r = run_aec("decompress", "--max-pixels", "1000", str(photo.with_suffix(".lat")), "-o", "-")
    assert r.returncode == 1 and b"pixel limit" in r.stderr and r.stdout == b""


def test_unwritable_output_is_one_line(photo, tmp_path):
    blocker = tmp_path / "plainfile"
    blocker.write_bytes(b"x")
    r = run_aec("compress", str(photo), "-o", str(blocker / "out.lat"))
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1


def test_full_disk_on_stdout_is_one_line(photo):
    import subprocess
    import sys

    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            [sys.executable, "-m", "aecompress", "compress", "-", "-q", "1"],
            input=photo.read_bytes(),
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert r.returncode == 1 and b"No space left" in r.stderr and b"Traceback" not in r.stderr


def test_aec_threads_environment(monkeypatch):
    from aecompress import runtime

    monkeypatch.setenv("AEC_THREADS", "3")
    assert runtime.default_threads() == 3
    monkeypatch.setenv("AEC_THREADS", "junk")
    assert runtime.default_threads() >= 1


@pytest.mark.parametrize("arg", [".", "", "/"])
def test_folder_or_empty_input_is_one_line_not_a_traceback(arg, tmp_path):
    r = run_aec("compress", arg, cwd=tmp_path)
    assert r.returncode == 1
    assert b"Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_output_file_in_missing_folder_is_made(photo):
    target = photo.parent / "missing" / "sub" / "out.lat"
    r = run_aec("compress", str(photo), "-o", str(target))
    assert r.returncode == 0, r.stderr
    assert target.read_bytes()[:4] == b"AECL"
    assert b".tmp" not in r.stderr


def test_existing_output_message_says_what_to_do(photo):
    assert run_aec("compress", str(photo)).returncode == 0
    r = run_aec("decompress", str(photo.with_suffix(".lat")))
    assert r.returncode == 1 and b"-f" in r.stderr and b"-o" in r.stderr


def test_batch_summary_line(photo):
    others = []
    for i in range(2):
        p = photo.parent / f"more{i}.png"
        p.write_bytes(photo.read_bytes())
        others.append(str(p))
    r = run_aec("compress", "-v", str(photo), *others, "-o", str(photo.parent / "out") + "/")
    assert r.returncode == 0, r.stderr
    assert b"3 of 3 files done" in r.stderr and b"MB ->" in r.stderr
    quiet = run_aec("compress", "--quiet", "-f", str(photo), *others, "-o", str(photo.parent / "out") + "/")
    assert quiet.returncode == 0 and quiet.stderr == b""


def test_target_options(photo):
    r = run_aec("compress", "-v", "--max-bytes", "600", str(photo))
    assert r.returncode == 0, r.stderr
    assert photo.with_suffix(".lat").stat().st_size <= 600 or b"q1," in r.stderr
    r = run_aec("compress", "-f", "-q", "3", "--target-psnr", "30", str(photo))
    assert r.returncode == 2 and b"Traceback" not in r.stderr


def test_exif_and_xmp_travel_unless_stripped(tmp_path):
    src = tmp_path / "meta.jpg"
    exif = Image.Exif()
    exif[0x010F] = "ACME camera"  # Make
    Image.fromarray(smooth_image(48, 32)).save(src, exif=exif, xmp=b"<x:xmpmeta>aec test</x:xmpmeta>", quality=95)
    assert run_aec("compress", str(src)).returncode == 0
    r = run_aec("decompress", str(tmp_path / "meta.lat"), "-o", str(tmp_path / "out.jpg"), "--out-quality", "80")
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path / "out.jpg")
    assert out.getexif()[0x010F] == "ACME camera"
    assert b"aec test" in out.info["xmp"]
    assert run_aec("compress", "--strip", "-f", str(src)).returncode == 0
    assert run_aec("decompress", "-f", str(tmp_path / "meta.lat"), "-o", str(tmp_path / "bare.png")).returncode == 0
    bare = Image.open(tmp_path / "bare.png")
    assert not bare.getexif() and "XML:com.adobe.xmp" not in bare.info


def test_output_quality_changes_jpeg_size(photo):
    assert run_aec("compress", str(photo)).returncode == 0
    lat = str(photo.with_suffix(".lat"))
    sizes = []
    for q in ("30", "95"):
        target = photo.parent / f"q{q}.jpg"
        assert run_aec("decompress", lat, "-o", str(target), "--out-quality", q).returncode == 0
        sizes.append(target.stat().st_size)
    assert sizes[0] < sizes[1]


def test_tune_picks_the_metric_model_and_the_file_names_it(photo, tmp_path):
    tunes = models.manifest(models.models_dir()).get("tunes", {})
    assert tunes.get("psnr") == models.get().id  # the default is the PSNR model
    plain = run_aec("compress", "-q", "4", "-o", str(tmp_path / "plain.lat"), str(photo))
    assert plain.returncode == 0, plain.stderr
    for tune, model_id in tunes.items():
        out = tmp_path / f"{tune}.lat"
        r = run_aec("compress", "--tune", tune, "-q", "4", "-o", str(out), str(photo))
        assert r.returncode == 0, r.stderr
        info = run_aec("info", str(out))
        assert model_id.encode() in info.stdout and f"tuned for {tune}".encode() in info.stdout
        r = run_aec("decompress", "-o", str(tmp_path / f"{tune}.png"), str(out))  # no flag needed to read it
        assert r.returncode == 0, r.stderr
        assert Image.open(tmp_path / f"{tune}.png").size == (96, 64)
    assert (tmp_path / "psnr.lat").read_bytes() == (tmp_path / "plain.lat").read_bytes()
    r = run_aec("compress", "--tune", "psnr", "--model", models.get().id, "-f", str(photo))
    assert r.returncode == 2 and b"not both" in r.stderr and b"Traceback" not in r.stderr
    r = run_aec("compress", "--tune", "psnr", "--lossless", "-f", str(photo))
    assert r.returncode == 2 and b"lossy" in r.stderr


def test_file_of_an_unknown_model_says_a_newer_aec_is_needed(photo, tmp_path):
    from aecompress import container

    r = run_aec("compress", "-q", "2", "-o", str(tmp_path / "a.lat"), str(photo))
    assert r.returncode == 0, r.stderr
    lat = container.parse((tmp_path / "a.lat").read_bytes())
    header = container.Header(**{**lat.header.__dict__, "model_id": "cdf97-future-v9"})
    (tmp_path / "b.lat").write_bytes(container.LatFile(header, lat.payload).pack())
    r = run_aec("decompress", "-o", str(tmp_path / "b.png"), str(tmp_path / "b.lat"))
    lines = r.stderr.decode().strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "Traceback" not in lines[0]
    assert "cdf97-future-v9" in lines[0] and "newer aecompress" in lines[0]
    assert not (tmp_path / "b.png").exists()
