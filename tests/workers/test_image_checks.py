"""workers.image_checks: format, declared size and completeness read from the bytes, before any decoding."""

import io
import re

import cv2
import numpy as np
import pytest
from PIL import Image

from workers.image_checks import DecodeError, ImageHeader, displayed_size, read_header


def _encoded(extension: str, height: int = 60, width: int = 100) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(extension, pixels)
    assert ok
    return encoded.tobytes()


def _jpeg_with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    sink = io.BytesIO()
    Image.new("RGB", (100, 60)).save(sink, "JPEG", exif=exif)
    return sink.getvalue()


@pytest.mark.parametrize(("extension", "kind"), [(".jpg", "JPEG"), (".png", "PNG"), (".webp", "WebP"), (".bmp", "BMP")])
def test_the_header_gives_the_format_and_stored_size(extension, kind):
    assert read_header(_encoded(extension)) == ImageHeader(kind, width=100, height=60)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (b"not an image at all", "not a decodable image (bytes look like text)"),
        (b"%PDF-1.7\n" + bytes(range(256)), "not a decodable image (bytes look like PDF)"),
        (b"<!DOCTYPE html><html></html>", "not a decodable image (bytes look like HTML)"),
        (bytes([0, 255, 1, 254]) * 64, "not a decodable image (unrecognised bytes)"),
    ],
)
def test_what_is_not_an_image_is_named(data, message):
    with pytest.raises(DecodeError, match=f"^{re.escape(message)}$"):
        read_header(data)


def test_the_pixel_limit_is_read_from_the_header_and_inclusive():
    data = _encoded(".png")
    assert read_header(data, max_pixels=6_000).width == 100
    with pytest.raises(DecodeError, match=r"^image is 100x60 = 0\.006 MP, above the 0\.005999 MP limit$"):
        read_header(data, max_pixels=5_999)


@pytest.mark.parametrize(
    ("extension", "cause"),
    [
        (".jpg", "truncated JPEG: no end-of-image marker after the image data"),
        (".png", "truncated PNG: ends inside the IDAT chunk"),
        (".webp", r"truncated WebP: \d+ of \d+ bytes"),
    ],
)
def test_a_file_cut_short_is_refused_by_its_structure(extension, cause):
    data = _encoded(extension)
    read_header(data + b"trailing bytes a camera or a careless copy left")  # bytes after the end are harmless
    with pytest.raises(DecodeError, match=f"^{cause}$"):
        read_header(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(("orientation", "shown"), [(1, (60, 100)), (3, (60, 100)), (6, (100, 60)), (8, (100, 60))])
def test_displayed_size_applies_the_exif_orientation(orientation, shown):
    data = _jpeg_with_orientation(orientation)
    header = read_header(data)
    assert (header.height, header.width) == (60, 100)
    assert displayed_size(data, header) == shown
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape[:2] == shown  # as OpenCV shows it
