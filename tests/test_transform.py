"""The learned wavelet's graphs (aecompress.transform): ONNX against PyTorch, tiles against the
whole level, and a codec model that uses them (needs the train extra to export the graphs)."""

import copy
from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from aecompress import codec, container, entropy, images, models, wavelet  # noqa: E402
from aecompress.codec import Codec  # noqa: E402
from aecompress.transform import Transform  # noqa: E402
from training import export  # noqa: E402
from training.lifting import AsTransform, LearnedLifting  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _random_lifting(skip: int = 1) -> LearnedLifting:
    torch.manual_seed(0)
    m = LearnedLifting(width=4, skip=skip)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m.eval()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> tuple[LearnedLifting, dict]:
    d = tmp_path_factory.mktemp("graphs")
    m = _random_lifting()
    export.export_lifting(m, d / "enc.onnx", d / "syn.onnx")
    sessions = {
        "encoder": ort.InferenceSession(str(d / "enc.onnx"), providers=["CPUExecutionProvider"]),
        "synthesis": ort.InferenceSession(str(d / "syn.onnx"), providers=["CPUExecutionProvider"]),
    }
    return m, sessions


@pytest.mark.parametrize("h, w", [(64, 48), (75, 53), (33, 90)])
def test_level_graphs_match_pytorch_on_any_side(graphs, h, w):
    m, sessions = graphs
    x = np.random.default_rng(h).normal(0, 60, (h, w)).astype(np.float32)
    with torch.no_grad():
        ref = [b[0, 0].numpy() for b in m.analyse(torch.from_numpy(x)[None, None])]
    got = [b[0, 0] for b in sessions["encoder"].run(None, {"x": x[None, None]})]
    assert (
        [g.shape for g in got]
        == [r.shape for r in ref]
        == [b.shape for b in [*wavelet.forward(x, 1)[:1], *wavelet.forward(x, 1)[1]]]
    )
    for g, r in zip(got, ref, strict=True):
        np.testing.assert_allclose(g, r, atol=2e-3)
    back = sessions["synthesis"].run(None, dict(zip(export.BANDS, [g[None, None] for g in got], strict=True)))[0]
    np.testing.assert_allclose(back[0, 0], x, atol=2e-3)  # perfect reconstruction, up to float32


def test_tiles_give_the_whole_levels_bands_and_the_image_back(graphs):
    _, sessions = graphs
    x = np.random.default_rng(1).normal(0, 60, (301, 230)).astype(np.float32)
    whole = Transform(skip=1, session=sessions.__getitem__, tile=10**6)
    tiled = Transform(skip=1, session=sessions.__getitem__, tile=64)
    a, b = whole.forward(x, 3), tiled.forward(x, 3)
    plain = wavelet.forward(x, 3)
    np.testing.assert_allclose(b[0], a[0], atol=1e-3)
    for ta, tb, tp, k in zip(a[1:], b[1:], plain[1:], range(3), strict=True):
        for ba, bb, bp in zip(ta, tb, tp, strict=True):
            np.testing.assert_allclose(bb, ba, atol=1e-3)
            # the finest level is skipped (plain CDF 9/7); the learned ones differ from it
            assert np.allclose(ba, bp, atol=1e-2) == (k == 2)
    np.testing.assert_allclose(tiled.inverse(b), x, atol=1e-2)
    assert whole.inverse(b, upto=2).shape == wavelet.inverse(plain, upto=2).shape  # a preview's size


def test_a_learned_transform_codec_compresses_and_decodes(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "WEIGHTS_DIR", tmp_path / "weights")
    lift = tmp_path / "lift.pt"
    m = _random_lifting()
    torch.save({"config": {"width": 4, "skip": 1}, "model": m.state_dict(), "step": 0}, lift)
    root = tmp_path / "models"
    export.main(
        [
            *("--ckpt", str(REPO / "training" / "weights" / "cdf97-ctx-v4.pt")),
            *("--tables", str(REPO / "models" / "cdf97-ctx-v4.tables.npz")),
            *("--lifting", str(lift), "--id", "lift-test", "--models", str(root)),
        ]
    )
    info = models.get("lift-test", "codec", root)
    assert set(info.files) == {"encoder", "synthesis", "decoder", "tables"}
    assert info.meta["transform"]["skip"] == 1
    img = smooth_image(200, 136, seed=4)
    pil = Image.fromarray(img)
    learned, fixed = Codec("lift-test", root=root), Codec("cdf97-ctx-v4")
    data = learned.compress(img, quality=9)
    lat = container.parse(data)
    assert lat.header.model_id == "lift-test"
    out = np.asarray(learned.decompress(lat))
    ref = np.asarray(fixed.decompress(container.parse(fixed.compress(img, quality=9))))
    assert images.psnr(out, img) > images.psnr(ref, img) - 3  # random corrections, still a codec
    assert not np.array_equal(learned.quantised_bands(pil, 9)[0][1][0], fixed.quantised_bands(pil, 9)[0][1][0])
    assert learned.transform.learned and not fixed.transform.learned
    with pytest.raises(models.ModelError):  # a file names the model that decodes it
        fixed.decompress(lat)


def test_the_training_view_of_the_learned_wavelet_is_the_runtimes(graphs):
    m, sessions = graphs
    view = AsTransform(copy.deepcopy(m))
    runtime_view = Transform(skip=1, session=sessions.__getitem__)
    x = np.random.default_rng(2).normal(0, 60, (121, 90)).astype(np.float32)
    for a, b in zip(view.forward(x, 3)[1:], runtime_view.forward(x, 3)[1:], strict=True):
        for ba, bb in zip(a, b, strict=True):
            np.testing.assert_allclose(ba, bb, atol=2e-3)
    rgb = np.ascontiguousarray(smooth_image(96, 80, seed=5).transpose(2, 0, 1))
    rec, ints = codec.roundtrip(rgb, 2.0, wavelet_transform=view)
    _, plain = codec.roundtrip(rgb, 2.0)
    assert images.psnr(rec, rgb.astype(np.float64)) > 45
    assert not np.array_equal(ints[0][1][0], plain[0][1][0])


def test_tables_fit_to_a_learned_wavelet_code_its_bands(graphs):
    from training.entropy_model import fit_tables, ladder

    view = AsTransform(copy.deepcopy(graphs[0]))
    photos = [np.ascontiguousarray(smooth_image(72, 64, seed=20 + i).transpose(2, 0, 1)) for i in range(3)]
    steps = ladder(2, 32.0, 0.5)
    tables = fit_tables(photos[:2], steps, weight_images=2, transform=view)
    rgb = photos[2]
    levels = wavelet.levels_for(*rgb.shape[1:])
    for lv, step in enumerate(steps):
        _, ints = codec.roundtrip(rgb, float(step), wavelet_transform=view)
        data = entropy.encode(ints, levels, tables, lv)
        back = entropy.decode(data, wavelet.band_shapes(*rgb.shape[1:], levels), levels, tables, lv)
        for c in range(3):
            for t, u in zip(back[c][1:], ints[c][1:], strict=True):
                assert all(np.array_equal(a, b) for a, b in zip(t, u, strict=True))
