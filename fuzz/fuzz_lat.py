"""Coverage-guided fuzzing of .lat decoding (container parser, entropy decoder, codec checks).

    python fuzz/fuzz_lat.py -atheris_runs=1000000 [corpus_dir]

Seeds are real .lat files made with the default model. Any exception other than the tool's own
clean errors (the ones the CLI prints as one line) is a failure; so is a mutated file that
decodes without error to pixels other than its seed's.
"""

from __future__ import annotations

import sys

import atheris
import numpy as np

with atheris.instrument_imports():
    from aecompress import codec, container, entropy, images, models

from PIL import Image  # noqa: E402

CLEAN_ERRORS = (container.FormatError, entropy.EntropyError, images.ImageError, models.ModelError)


def seeds(cod: codec.Codec) -> dict[bytes, bytes]:
    """Valid files and the pixels they decode to."""
    rng = np.random.default_rng(0)
    out = {}
    for w, h, mode in [(16, 16, "RGB"), (33, 17, "RGBA"), (5, 40, "L")]:
        a = rng.integers(0, 256, (h, w, len(mode)), dtype=np.uint8)
        im = Image.fromarray(a.squeeze(2) if a.shape[2] == 1 else a, mode)
        data = cod.compress(im, 1 + len(out))
        out[data] = cod.decompress(container.parse(data)).tobytes()
    return out


def main() -> None:
    cod = codec.Codec(device="cpu", threads=1)
    known = seeds(cod)

    headers = [container.parse(d).header for d in known]

    def one_input(data: bytes) -> None:
        if data[:1] == b"\xff":
            # A well-formed container around an arbitrary payload, as a hostile encoder could
            # write: it must decode to some picture or fail cleanly, never crash.
            hd = headers[len(data) % len(headers)]
            payload = data[1 : 1 + (len(data) - 1) // 4 * 4]
            alpha = images.save_alpha(Image.new("L", (hd.width, hd.height))) if hd.has_alpha else None
            try:
                cod.decompress(container.LatFile(hd, payload, alpha))
            except CLEAN_ERRORS:
                pass
            return
        try:
            lat = container.parse(data, max_pixels=1 << 20)
            pixels = cod.decompress(lat).tobytes()
        except CLEAN_ERRORS:
            return
        if data in known:
            assert pixels == known[data], "a valid file decoded differently"
            return
        raise AssertionError(f"a corrupted file of {len(data)} bytes decoded without error")

    if len(sys.argv) > 1 and not sys.argv[-1].startswith("-"):
        import pathlib

        corpus = pathlib.Path(sys.argv[-1])
        corpus.mkdir(parents=True, exist_ok=True)
        for i, data in enumerate(known):
            (corpus / f"seed{i}.lat").write_bytes(data)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
