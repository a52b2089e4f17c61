"""The README's Ray Data recipe on a local Ray cluster: outputs byte-identical to `aec compress`."""

from pathlib import Path

import numpy as np
import pytest
from conftest import run_aec, smooth_image
from PIL import Image

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_data_compress_matches_the_command_line(cluster, tmp_path):
    from aecompress.ray import Compress, Decompress

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(30):
        Image.fromarray(smooth_image(40 + i, 32 + (i % 5), seed=i)).save(src / f"p{i:02d}.png")
    (src / "broken.png").write_bytes(b"not an image")

    ds = ray.data.read_binary_files(str(src), include_paths=True)
    ds = ds.map_batches(
        Compress, fn_constructor_kwargs={"quality": 5, "threads": 1}, concurrency=2, num_cpus=0.5, batch_size=8
    )
    rows = {Path(r["path"]).stem: r for r in ds.iter_rows()}
    assert len(rows) == 31
    assert rows["broken"]["lat"] == b"" and rows["broken"]["error"]

    cli = tmp_path / "cli"
    good = sorted(str(p) for p in src.glob("p*.png"))
    r = run_aec("compress", "-q", "5", "-o", f"{cli}/", *good)
    assert r.returncode == 0, r.stderr
    for p in good:
        stem = Path(p).stem
        assert rows[stem]["lat"] == (cli / f"{stem}.lat").read_bytes(), stem
        assert rows[stem]["error"] == ""

    back = ray.data.from_items([{"lat": rows[s]["lat"]} for s in ("p00", "p07")])
    back = back.map_batches(
        Decompress, fn_constructor_kwargs={"output": "image"}, concurrency=1, num_cpus=0.5, batch_size=2
    )
    images = [np.asarray(r["image"]) for r in back.iter_rows()]
    assert [a.shape for a in images] == [(32, 40, 3), (34, 47, 3)]
