"""aecompress: learned image compression and denoising on ONNX Runtime.

Library use:

    from aecompress import codec
    data = codec.compress(pil_image, quality=4)
    image = codec.decompress(data)
"""

__version__ = "0.1.0"
