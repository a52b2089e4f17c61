"""The one compiled part: the lossless coder's inner loops (aecompress/_lossless_loops.c). Optional:
where it cannot be built, aecompress falls back to the NumPy reference, slower but bit-identical."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "aecompress._lossless_loops",
            ["aecompress/_lossless_loops.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
