"""Training-side pieces that the runtime depends on: fitting context tables, the trainers' smoke runs."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image

torch = pytest.importorskip("torch")

from aecompress import codec, entropy, wavelet  # noqa: E402
from aecompress.images import psnr as images_psnr  # noqa: E402
from training.entropy_model import fit_tables, ladder  # noqa: E402


def _photos(n: int, seed: int = 0) -> list[np.ndarray]:
    return [np.ascontiguousarray(smooth_image(72, 56, seed=seed + i).transpose(2, 0, 1)) for i in range(n)]


def test_fitted_tables_code_losslessly_and_use_contexts(tmp_path):
    steps = ladder(3, 32.0, 0.5)
    tables = fit_tables(_photos(4), steps, weight_images=2)
    tables.save(tmp_path / "t.npz")
    tables = entropy.ContextTables.load(tmp_path / "t.npz")
    assert tables.weights.max() > 0
    test = _photos(2, seed=10)
    for lv, step in enumerate(steps):
        for rgb in test:
            _, ints = codec.roundtrip(rgb, float(step))
            levels = wavelet.levels_for(*rgb.shape[1:])
            data = entropy.encode(ints, levels, tables, lv)
            back = entropy.decode(data, wavelet.band_shapes(*rgb.shape[1:], levels), levels, tables, lv)
            assert all(np.array_equal(a, b) for a, b in zip(back[0][1], ints[0][1], strict=True))
    # fitted tables beat a flat code: well under 4 bits per coded magnitude at the coarsest level
    _, ints = codec.roundtrip(test[0], float(steps[0]))
    n = sum(b.size for c in range(3) for t in ints[c][1:] for b in t)
    assert 8 * len(entropy.encode(ints, wavelet.levels_for(56, 72), tables, 0)) < n


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(4):
        Image.fromarray(smooth_image(80, 72, seed=i)).save(d / f"{i}.png")
    return d


def test_post_filter_training_smoke_run_resumes(folder, tmp_path):
    from training.train_postfilter import main

    ckpt = tmp_path / "pf.pt"
    args = ["--data", str(folder), "--ckpt", str(ckpt), "--crop", "64", "--batch", "2", "--val-count", "1"]
    main([*args, "--steps", "3", "--save-every", "2", "--val-every", "3", "--threads", "1"])
    state = torch.load(ckpt, weights_only=False)
    assert state["step"] == 3
    main([*args, "--steps", "5", "--threads", "1"])
    assert torch.load(ckpt, weights_only=False)["step"] == 5
    assert (tmp_path / "pf.log.jsonl").read_text().count("\n") >= 2


def test_gpu_kit_runs_on_cpu(folder, tmp_path):
    """The prepared GPU command, a few steps on the CPU: weights and a log land in the output folder."""
    from training.gpu_kit import main

    out = tmp_path / "out"
    main(["--out", str(out), "--data", str(folder), "--steps", "3", "--device", "cpu", "--batch", "2", "--crop", "64"])
    assert (out / "postfilter.pt").exists() and (out / "train.log").read_text()


def test_denoiser_training_smoke_run_resumes(folder, tmp_path):
    from training.train_denoiser import main

    ckpt = tmp_path / "dn.pt"
    args = ["--data", str(folder), "--ckpt", str(ckpt), "--crop", "32", "--batch", "2", "--val-count", "1"]
    main([*args, "--steps", "2", "--save-every", "1", "--val-every", "2", "--threads", "1"])
    main([*args, "--steps", "3", "--threads", "1"])
    assert torch.load(ckpt, weights_only=False)["step"] == 3


def test_pruning_keeps_the_filter_when_nothing_is_cut_and_narrows_it_otherwise():
    from training.nets import PostFilter
    from training.prune_postfilter import prune

    torch.manual_seed(0)
    full = PostFilter(width=16, blocks=2)
    for p in full.parameters():  # a trained-looking filter: the last convolution is not zero
        torch.nn.init.normal_(p, std=0.1)
    x, step = torch.rand(1, 3, 32, 32), torch.tensor([20.0])
    with torch.no_grad():
        torch.testing.assert_close(prune(full, 16)(x, step), full(x, step))
        small = prune(full, 8)
        assert small.blocks[0].body[0].out_channels == 8 and small.blocks[1].body[2].in_channels == 8
        assert small(x, step).shape == x.shape


@pytest.mark.parametrize("h, w", [(96, 64), (75, 53), (50, 37)])
def test_untrained_learned_lifting_is_the_shipped_wavelet(h, w):
    from training.lifting import LearnedLifting

    x = torch.from_numpy(smooth_image(w, h)[..., 0].astype(np.float64) - 128)[None, None]
    with torch.no_grad():
        got = LearnedLifting().double()(x, 3)
    ref = wavelet.forward(x[0, 0].numpy().astype(np.float32), 3)
    assert np.allclose(got[0][0, 0].numpy(), ref[0], atol=1e-3)
    for g, r in zip(got[1:], ref[1:], strict=True):
        for a, b in zip(g, r, strict=True):
            assert a[0, 0].shape == b.shape and np.allclose(a[0, 0].numpy(), b, atol=1e-3)


@pytest.mark.parametrize("h, w, skip", [(64, 32, 0), (45, 31, 0), (45, 31, 1)])
def test_learned_lifting_reconstructs_perfectly_whatever_its_corrections(h, w, skip):
    from training.lifting import LearnedLifting

    torch.manual_seed(0)
    m = LearnedLifting(skip=skip).double()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.05)
    x = torch.rand(2, 1, h, w, dtype=torch.float64) * 255 - 128
    with torch.no_grad():
        bands = m(x, 3)
        plain = LearnedLifting().double()(x, 3)
    # the corrections changed the bands, but for the finest levels skipped
    assert torch.allclose(bands[-1][2], plain[-1][2]) == bool(skip)
    assert not torch.allclose(bands[-2][2], plain[-2][2])
    with torch.no_grad():
        assert torch.allclose(m.inverse(bands), x, atol=1e-8)


def test_context_rate_charges_what_the_coder_writes_and_pulls_magnitudes_down():
    from aecompress import models
    from training.context_rate import BIN_CENTRE, code_lengths, image_bits, row_maps
    from training.entropy_model import subbands

    tables = entropy.ContextTables.load(models.get("cdf97-ctx-v4", "codec").path("tables"))
    rgb = np.ascontiguousarray(smooth_image(256, 192, seed=3).transpose(2, 0, 1))
    for lv in (6, 10):
        ints, levels = subbands(rgb, float(tables.steps[lv]), scale=tables.band_scale)
        maps = row_maps(ints, levels, tables, lv)
        # magnitudes at their bins' centres: the proxy then reads the rows' code lengths exactly
        scaled = [
            [None] + [tuple(torch.tensor(abs(b) + BIN_CENTRE * (b != 0), requires_grad=True) for b in t) for t in c[1:]]
            for c in ints
        ]
        lengths = torch.from_numpy(code_lengths(tables, lv))
        bits = image_bits(scaled, maps, lengths)
        real = 8 * len(entropy.encode(ints, levels, tables, lv))
        assert 0.95 * real < float(bits) < 1.02 * real  # the low band is not charged
        bits.backward()
        grads = torch.cat([b.grad[b > 0] for c in scaled for t in c[1:] for b in t])
        # larger magnitudes cost more, but for a few rows of busy contexts (zeros sit in their bin)
        assert (grads > 0).float().mean() > 0.9 and grads.mean() > 0


def test_lifting_training_smoke_run_moves_the_corrections_and_validates_with_the_real_coder(folder, tmp_path):
    from training.train_lifting import main

    ckpt = tmp_path / "lift.pt"
    args = ["--data", str(folder), "--ckpt", str(ckpt), "--crop", "64", "--batch", "2", "--val-count", "1"]
    main([*args, "--steps", "2", "--save-every", "1", "--val-every", "2", "--threads", "1"])
    state = torch.load(ckpt, weights_only=False)
    assert state["step"] == 2
    assert any(v.abs().sum() > 0 for k, v in state["model"].items() if k.endswith("body.4.weight"))
    assert "bd_rate_vs_fixed" in (tmp_path / "lift.log.jsonl").read_text()


def test_post_filter_trains_on_ms_ssim(tmp_path):
    from training.train_postfilter import main

    d = tmp_path / "big"
    d.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(200, 184, seed=i)).save(d / f"{i}.png")
    ckpt = tmp_path / "pf.pt"
    args = ["--data", str(d), "--ckpt", str(ckpt), "--crop", "176", "--batch", "1", "--val-count", "1"]
    main([*args, "--metric", "msssim", "--steps", "2", "--val-every", "2", "--threads", "1", "--tables", "none"])
    assert torch.load(ckpt, weights_only=False)["step"] == 2
    assert "msssim_db" in (tmp_path / "pf.log.jsonl").read_text()
    with pytest.raises(SystemExit):  # five scales need a crop of 176 or more
        main([*args[:4], "--crop", "64", "--metric", "msssim", "--steps", "1"])


def test_rd_compares_two_reports(tmp_path, capsys):
    from training.rd import main

    def report(name, gain):
        rates = (0.2, 0.5, 1, 2)
        rows = [{"bpp": b, "psnr": 30 + 6 * np.log2(b) + gain, "msssim_db": 15 + 5 * np.log2(b)} for b in rates]
        (tmp_path / f"{name}.json").write_text(json.dumps({"model": name, "curves": {"aec": rows}}))

    report("a", 0.0)
    report("b", 6.0)  # 6 dB better at every rate: half the bits at equal PSNR
    main([str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    out = capsys.readouterr().out
    assert "b vs a, BD-rate on psnr: -50.00%" in out and "msssim_db: +0.00%" in out


def test_lossless_tables_fit_and_code_what_they_were_fitted_on(tmp_path, capsys):
    """A smoke run of training.lossless_model: it fits tables through the coder's own walk,
    and the coder with them decodes exactly and beats PNG on held-out pictures."""
    from aecompress import lossless
    from aecompress.lossless_coder import LosslessTables
    from training import lossless_model

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(5):
        Image.fromarray(smooth_image(96, 64, seed=i)).save(data / f"p{i}.png")
    out = tmp_path / "t.npz"
    lossless_model.main(["--data", str(data), "--out", str(out), "--every", "1", "--val-count", "2"])
    tables = LosslessTables.load(out)
    a = smooth_image(96, 64, seed=9)
    layout, sections = lossless.encode(a, "RGB", 8, tables)
    back = lossless.decode(sections, layout, tables)
    assert np.array_equal(back, a)
    lossless_model.main(["--data", str(data), "--evaluate", str(out), "--val-count", "2"])
    printed = capsys.readouterr().out
    aec, png = (float(v) for v in re.findall(r"'aec': ([\d.]+), 'png': ([\d.]+)", printed)[-1])
    assert aec < png


def test_bf16_defaults_to_what_the_hardware_computes_natively():
    from argparse import ArgumentParser
    from pathlib import Path as P

    from training import loop

    ap = ArgumentParser()
    loop.add_bf16_argument(ap)
    flags = P("/proc/cpuinfo").read_text() if P("/proc/cpuinfo").exists() else ""
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert loop.resolve_bf16(ap.parse_args([])) is native
    assert loop.resolve_bf16(ap.parse_args(["--bf16"])) is True
    assert loop.resolve_bf16(ap.parse_args(["--no-bf16"])) is False
    assert loop.resolve_bf16(ap.parse_args([]), "cuda") is True


def test_an_int8_denoiser_exports_and_denoises_like_the_float_one(tmp_path, monkeypatch):
    from aecompress import models
    from aecompress.denoiser import Denoiser
    from training import export

    monkeypatch.setattr(export, "WEIGHTS_DIR", tmp_path / "weights")
    photos = tmp_path / "train"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(smooth_image(120, 96, seed=30 + i)).save(photos / f"bsds_train_{i}.png")
    weights = Path(__file__).resolve().parents[1] / "training" / "weights" / "unet-blind-v3.pt"
    root = tmp_path / "models"
    for name, extra in (("float", []), ("eight", ["--int8", str(photos)])):
        export.main(["--kind", "denoiser", "--ckpt", str(weights), "--id", name, "--models", str(root), *extra])
    assert "int8" in models.get("eight", "denoiser", root).meta["architecture"]
    assert (root / "eight.onnx").stat().st_size < 0.5 * (root / "float.onnx").stat().st_size
    rng = np.random.default_rng(0)
    clean = smooth_image(96, 80, seed=40).astype(np.float64)
    noisy = np.clip(np.rint(clean + rng.normal(0, 15, clean.shape)), 0, 255).astype(np.uint8)
    a = Denoiser("float", root=root).denoise(noisy)
    b = Denoiser("eight", root=root).denoise(noisy)
    noisy_db = images_psnr(noisy, clean)
    assert images_psnr(b, clean) > noisy_db + 3  # it still denoises
    assert images_psnr(b, clean) > images_psnr(a, clean) - 1.0
