"""The errors the command line reports as one line per file: each raised by its own module,
all defined here so that the batch runner can name them without importing NumPy or Pillow (the
start-up of `aec --help` and `aec --version`)."""

from __future__ import annotations


class FormatError(ValueError):
    """The bytes are not a valid .lat file (truncated, corrupted, or from another format)."""


class EntropyError(ValueError):
    """The entropy-coded payload does not decode to valid subbands."""


class OutputError(ValueError):
    """The output cannot be written as asked."""


class ImageError(ValueError):
    """The input is not an image we can read, or the output cannot be written as asked."""


class ModelError(RuntimeError):
    """A model is missing, unknown or does not match its manifest."""


class DeviceError(RuntimeError):
    """The requested device cannot run the models."""
