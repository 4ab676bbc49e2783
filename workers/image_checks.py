"""What encoded image bytes are, checked before any pixel is decoded.

Decoding takes untrusted bytes, so ``read_header`` checks what they are (one of the job's formats: JPEG, PNG, WebP,
BMP, TIFF), how many pixels the header declares (a small file can declare a gigapixel image) and, where the format
makes it cheap, whether the file is whole: a cut JPEG would otherwise come back half grey from OpenCV 4 (libjpeg
only warns), and as a bare ``None`` from OpenCV 5. Every refusal is a ``DecodeError`` whose one-line message says
the cause.

The declared size comes from ``imagesize``, which reads the header fields only, with no allocation in proportion to
the image. Pillow's ``Image.open`` would also read only the header, but it applies its own process-wide bomb limit
first and then reports a pixel count without the size.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import imagesize

from schemas.choices import DEFAULT_MAX_PIXELS


class DecodeError(ValueError):
    """The bytes are not an image this job can decode."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares, read before any pixel is decoded."""

    kind: str
    """One of the job's formats: JPEG, PNG, WebP, BMP, TIFF."""
    width: int
    height: int
    """As stored, before any EXIF orientation."""


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """The format and stored size of encoded image bytes, or a ``DecodeError`` for empty data, bytes that are not
    one of the job's formats, an image above ``max_pixels``, a JPEG, PNG or WebP that is cut short."""
    if not data:
        raise DecodeError("empty file")
    kind = _image_format(data)
    if kind is None:
        raise DecodeError(f"not a decodable image ({_describe(data)})")
    width, height = imagesize.get(io.BytesIO(data), exif_rotation=False)
    if width <= 0 or height <= 0:
        raise DecodeError(f"truncated or corrupt {kind}: no image size in the header")
    if width * height > max_pixels:
        raise DecodeError(
            f"image is {width}x{height} = {_megapixels(width * height)} MP, "
            f"above the {_megapixels(max_pixels)} MP limit"
        )
    cut = _TRUNCATION_CHECKS.get(kind)
    if cut is not None and (cause := cut(data)) is not None:
        raise DecodeError(f"truncated {kind}: {cause}")
    return ImageHeader(kind, width, height)


def displayed_size(data: bytes, header: ImageHeader) -> tuple[int, int]:
    """(height, width) of the image as shown, its EXIF orientation applied (as OpenCV and TorchCodec apply it
    when they decode), from the header alone."""
    shown = imagesize.get(io.BytesIO(data), exif_rotation=True) if header.kind == "JPEG" else None
    turned = shown is not None and shown != (header.width, header.height)
    return (header.width, header.height) if turned else (header.height, header.width)


def _image_format(data: bytes) -> str | None:
    """The job's image format these bytes start like (by signature, as OpenCV picks its decoder), or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    return None


_OTHER_SIGNATURES = (
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "ZIP"),
    (b"PK\x05\x06", "ZIP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x1f\x8b", "gzip"),
)
"""Prefixes of files that commonly end up with an image extension: documents, archives, other image formats."""


def _describe(data: bytes) -> str:
    """What bytes that are not one of the job's image formats look like, for the error message."""
    head = data[:512]
    for prefix, kind in _OTHER_SIGNATURES:
        if head.startswith(prefix):
            return f"bytes look like {kind}"
    if head[4:8] == b"ftyp":
        return "bytes look like HEIF/AVIF/MP4"
    markup = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if markup.startswith((b"<!doctype html", b"<html")):
        return "bytes look like HTML"
    if markup.startswith((b"<?xml", b"<svg")):
        return "bytes look like XML"
    if _is_text(head):
        return "bytes look like text"
    return "unrecognised bytes"


def _is_text(sample: bytes) -> bool:
    """UTF-8 made of printable characters and whitespace; a character cut by the end of the sample is fine."""
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:
            return False
        text = sample[: exc.start].decode("utf-8")
    return bool(text) and all(char.isprintable() or char.isspace() for char in text)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:g}"


def _jpeg_truncation(data: bytes) -> str | None:
    """Why this JPEG is cut short, or None when it is whole (or broken in a way only the decoder can tell).

    Walks the header segments by their lengths, so that a preview JPEG inside an APP segment, with its own end
    marker, is stepped over, up to the first start-of-scan; after it the end-of-image marker FFD9 must follow
    somewhere. It cannot occur inside the entropy-coded data (a data byte FF is always followed by 00 or a restart
    marker), so finding it anywhere later means the scans are whole; bytes after it (camera trailers, padding) are
    ignored, as decoders ignore them. The marker is searched for from the end, where it normally is, so the check
    costs next to nothing beside the decode.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == 0xD9:
            return None
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 2
        else:
            end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:
                return None if data.rfind(b"\xff\xd9", end) >= 0 else "no end-of-image marker after the image data"
            pos = end
    return "ends inside the header"


def _png_truncation(data: bytes) -> str | None:
    """Why this PNG is cut short, or None when its chunks run whole up to IEND.

    Steps from chunk to chunk by the declared lengths, so bytes inside compressed data that happen to spell IEND
    are never mistaken for the end.
    """
    pos = 8
    while pos + 8 <= len(data):
        chunk = data[pos + 4 : pos + 8]
        if chunk == b"IEND":
            return None
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
        if pos > len(data):
            name = chunk.decode("ascii") if chunk.isalpha() else chunk.hex()
            return f"ends inside the {name} chunk"
    return "no IEND chunk"


def _webp_truncation(data: bytes) -> str | None:
    """The RIFF header declares the file's length; fewer bytes than that means the file was cut."""
    declared = 8 + int.from_bytes(data[4:8], "little")
    return f"{len(data)} of {declared} bytes" if len(data) < declared else None


_TRUNCATION_CHECKS: dict[str, Callable[[bytes], str | None]] = {
    "JPEG": _jpeg_truncation,
    "PNG": _png_truncation,
    "WebP": _webp_truncation,
}
"""Formats whose completeness is cheap to check from the structure; a cut BMP or TIFF fails in OpenCV."""
