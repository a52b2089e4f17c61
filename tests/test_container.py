import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aecompress import container
from aecompress.container import FormatError, Header, LatFile


def sample(alpha: bool = True) -> LatFile:
    h = Header(
        quality=3,
        mode="RGBA" if alpha else "RGB",
        width=70,
        height=33,
        model_id="m-1",
        model_hash=bytes(range(16)),
        has_alpha=alpha,
    )
    return LatFile(h, b"\x01\x02\x03\x04" * 5, b"alpha-bytes" if alpha else None)


@pytest.mark.parametrize("alpha", [True, False])
def test_round_trip(alpha):
    lat = sample(alpha)
    assert container.parse(lat.pack()) == lat


def test_every_truncation_is_refused():
    data = sample().pack()
    for n in range(len(data)):
        with pytest.raises(FormatError):
            container.parse(data[:n])


def test_every_single_bit_flip_is_refused():
    data = sample().pack()
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(FormatError):
                container.parse(bytes(bad))


def test_trailing_bytes_refused():
    with pytest.raises(FormatError, match="unexpected bytes"):
        container.parse(sample().pack() + b"\0")


def test_other_version_refused_with_reason():
    data = bytearray(sample(False).pack())
    data[4] = 9
    end = data.index(b"m-1") + 3 + 16
    struct.pack_into("<I", data, end, zlib.crc32(bytes(data[:end])))
    with pytest.raises(FormatError, match="version 9"):
        container.parse(bytes(data))


@pytest.mark.parametrize("version", [1, 2])
def test_old_format_names_the_release_that_reads_it(version):
    data = bytearray(sample(False).pack())
    data[4] = version
    with pytest.raises(FormatError, match="pip install 'aecompress<0.2'"):
        container.parse(bytes(data))


def test_pixel_limit_checked_before_allocation():
    data = sample(False).pack()
    with pytest.raises(FormatError, match="pixel limit"):
        container.parse(data, max_pixels=100)


def test_not_a_lat_file():
    with pytest.raises(FormatError, match="magic"):
        container.parse(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_format_error(data):
    try:
        container.parse(container.MAGIC + data)
    except FormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.binary(min_size=1, max_size=8))
def test_splices_are_refused(pos, junk):
    data = sample().pack()
    pos = min(pos, len(data))
    spliced = data[:pos] + junk + data[pos:]
    with pytest.raises(FormatError):
        container.parse(spliced)


def test_metadata_sections_round_trip():
    lat = sample(False)
    hd = Header(**{**lat.header.__dict__, "has_exif": True, "has_xmp": True})
    full = LatFile(hd, lat.payload, None, None, b"exif-bytes", b"<xmp/>")
    assert container.parse(full.pack()) == full
