"""The optimised-graph cache: what it loads must run exactly as the model file does."""

import numpy as np
import pytest

from aecompress import models, runtime


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AEC_CACHE_DIR", str(tmp_path))
    return tmp_path


def _run(sess) -> np.ndarray:
    x = np.random.default_rng(0).random((1, 3, 48, 64), dtype=np.float32)
    return sess.run(None, {"image": x, "step": np.array([8.0], np.float32)})[0]


def test_cache_entry_written_then_used(cache):
    info = models.get(None, "codec")
    first = models.load_session(info, "decoder", "cpu", 1)
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith(info.sha256["decoder"][:32])
    assert runtime.cached_session(info.sha256["decoder"], "cpu", 1) is not None
    again = models.load_session(info, "decoder", "cpu", 1)
    plain = runtime.session(info.path("decoder"), "cpu", 1)
    assert np.array_equal(_run(first), _run(plain))
    assert np.array_equal(_run(again), _run(plain))


def test_damaged_cache_entry_is_rebuilt(cache):
    info = models.get(None, "codec")
    models.load_session(info, "decoder", "cpu", 1)
    (entry,) = cache.iterdir()
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    entry.write_bytes(bytes(blob))
    assert runtime.cached_session(info.sha256["decoder"], "cpu", 1) is None
    sess = models.load_session(info, "decoder", "cpu", 1)
    assert np.array_equal(_run(sess), _run(runtime.session(info.path("decoder"), "cpu", 1)))
    assert runtime.cached_session(info.sha256["decoder"], "cpu", 1) is not None


def test_cache_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("AEC_CACHE_DIR", "")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    models.load_session(models.get(None, "codec"), "decoder", "cpu", 1)
    assert not any(tmp_path.iterdir())


def test_unwritable_cache_still_runs(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AEC_CACHE_DIR", str(blocker / "cache"))
    sess = models.load_session(models.get(None, "codec"), "decoder", "cpu", 1)
    assert _run(sess).shape[1:] == (3, 48, 64)


def test_io_binding_runs_as_plain_run():
    """The CUDA path's IO binding, exercised on the CPU: the same output as a plain run."""
    info = models.get(None, "codec")
    sess = runtime.session(info.path("decoder"), "cpu", 1)
    feeds = {
        "image": np.random.default_rng(1).random((1, 3, 48, 80), dtype=np.float32),
        "step": np.array([8.0], np.float32),
    }
    plain = runtime.run(sess, feeds)
    bound = runtime.run(sess, feeds, bind=True)
    assert bound.shape == plain.shape == (1, 3, 48, 80)
    assert np.array_equal(bound, plain)
