"""The one compiled part: the lossless coder's inner loops (aecompress/csrc/, the extension
aecompress._lossless_loops). Optional: where it cannot be built, aecompress falls back to the NumPy
reference, slower but bit-identical."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aecompress._lossless_loops",
            [f"aecompress/csrc/{name}.c" for name in ("buffers", "contexts", "lifting", "passes", "module")],
            depends=["aecompress/csrc/loops.h"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
