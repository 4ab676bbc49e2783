"""A corpus of awkward image files, made from one real photo: valid but unusual encodings that must decode in
the displayed orientation, and broken or hostile files that must fail with the cause in the job's error row.

Every file is written for real (OpenCV, Pillow, zlib), not mocked, so the bytes are what a camera, an editor
or a careless upload produces. ``CASES`` names them, so tests can be parametrized before the files exist.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Expected:
    """What the job must make of one file."""

    status: Literal["ok", "error"]
    size: tuple[int, int] | None = None
    """(width, height) of the decoded image as displayed, EXIF orientation applied; None for an error."""
    error: str | None = None
    """How the job's error message starts: ``decode: `` then the ``DecodeError`` message; None when ok."""


@dataclass(frozen=True)
class Photo:
    """The real photo every case is made from: its original bytes and its RGB pixels."""

    jpeg: bytes
    image: Image.Image

    @property
    def rgb(self) -> np.ndarray:
        return np.asarray(self.image)

    @property
    def shown(self) -> Expected:
        return _shown(self.image.width, self.image.height)


Case = Callable[[Photo], tuple[bytes, Expected]]


def make_corpus(folder: Path, photo: Path) -> dict[str, Expected]:
    """Write every case of ``CASES`` into ``folder``, made from the JPEG ``photo``; per file name, its outcome."""
    source = Photo(jpeg=photo.read_bytes(), image=Image.open(photo).convert("RGB"))
    expected = {}
    for name, build in CASES.items():
        data, outcome = build(source)
        (folder / name).write_bytes(data)
        expected[name] = outcome
    return expected


def _shown(width: int, height: int) -> Expected:
    return Expected("ok", size=(width, height))


def _fails(message: str) -> Expected:
    return Expected("error", error=message)


def _pillow(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _opencv_png(pixels: np.ndarray) -> bytes:
    """PNG of a gray or BGR array; OpenCV writes uint16 arrays as 16-bit PNGs (Pillow cannot for colour)."""
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return encoded.tobytes()


def _low_byte_noise(shape: tuple[int, ...]) -> np.ndarray:
    """Random low bytes, so a 16-bit decode that rounds (instead of keeping the high byte) shows."""
    return np.random.default_rng(16).integers(0, 256, size=shape, dtype=np.uint16)


def _gray16(photo: Photo) -> tuple[bytes, Expected]:
    """16-bit grayscale whose high bytes are the photo's gray levels."""
    gray = cv2.cvtColor(photo.rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16)
    return _opencv_png((gray << 8) | _low_byte_noise(gray.shape)), photo.shown


def _rgb16(photo: Photo) -> tuple[bytes, Expected]:
    """16-bit colour whose high bytes are the photo's pixels."""
    bgr = photo.rgb[..., ::-1].astype(np.uint16)
    return _opencv_png((bgr << 8) | _low_byte_noise(bgr.shape)), photo.shown


def _rgba(photo: Photo) -> tuple[bytes, Expected]:
    """The photo with an alpha ramp from transparent to opaque: colour stays, alpha is dropped."""
    height, width = photo.rgb.shape[:2]
    alpha = np.broadcast_to(np.linspace(0, 255, width, dtype=np.uint8), (height, width))
    return _pillow(Image.fromarray(np.dstack([photo.rgb, alpha]), "RGBA"), "PNG"), photo.shown


def _exif_rotated(orientation: int) -> Case:
    """The photo stored as is, with an EXIF orientation (6 or 8) that a viewer shows turned a quarter."""

    def build(photo: Photo) -> tuple[bytes, Expected]:
        exif = Image.Exif()
        exif[0x0112] = orientation
        return _pillow(photo.image, "JPEG", exif=exif.tobytes()), _shown(photo.image.height, photo.image.width)

    return build


def _trailing_garbage(photo: Photo) -> tuple[bytes, Expected]:
    """A whole JPEG followed by padding and junk that even contains FFD9, as some cameras and tools leave."""
    junk = np.random.default_rng(9).bytes(512)
    return photo.jpeg + bytes(512) + junk + b"\xff\xd9trailer", photo.shown


def _truncated_after_preview(photo: Photo) -> tuple[bytes, Expected]:
    """A JPEG carrying a complete preview JPEG in an APP segment, cut in half: the preview's own end marker is
    in the file, so only a check that steps over header segments sees that the main image is cut."""
    preview = _pillow(photo.image.resize((64, 48)), "JPEG")
    segment = b"\xff\xef" + struct.pack(">H", 2 + len(preview)) + preview
    whole = photo.jpeg[:2] + segment + photo.jpeg[2:]
    cut = whole[: len(whole) // 2]
    assert b"\xff\xd9" in cut, "the preview's end marker must survive the cut, or the case tests nothing"
    return cut, _fails("decode: truncated JPEG: no end-of-image marker after the image data")


def _damaged_data(photo: Photo) -> tuple[bytes, Expected]:
    """A JPEG whose entropy-coded data has bytes overwritten mid-scan, as a bad sector or a bit flip in transit
    leaves it: the header and end marker are whole, and libjpeg decodes the photo down to the damage (grey
    below). Decoded that way by every ``--decode`` mode, an ok row."""
    middle = len(photo.jpeg) // 2
    return photo.jpeg[:middle] + b"\xff\x51" * 2000 + photo.jpeg[middle + 4000 :], photo.shown


def _unreadable_scan(photo: Photo) -> tuple[bytes, Expected]:
    """A JPEG whose scan names a colour component its frame does not have: whole to every header check, refused
    by every decoder."""
    scan = photo.jpeg.index(b"\xff\xda") + 5
    return photo.jpeg[:scan] + b"\x09" + photo.jpeg[scan + 1 :], _fails("decode: truncated or corrupt JPEG: ")


def _zip(photo: Photo) -> tuple[bytes, Expected]:
    """An archive of photos saved under an image name."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.jpg", photo.jpeg)
    return out.getvalue(), _fails("decode: not a decodable image (bytes look like ZIP)")


def _bomb(photo: Photo) -> tuple[bytes, Expected]:
    """A real 30000x30000 PNG of about 110 KB that would decode to 2.7 GB of RGB.

    1-bit black rows, deflated as a stream so that the 112 MB of raw rows never exist at once.
    """
    width = height = 30_000
    block = (b"\x00" + bytes((width + 7) // 8)) * 1_000
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(block) for _ in range(height // 1_000)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return png, _fails("decode: image is 30000x30000 = 900 MP, above the 178.957 MP limit")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


_PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
_HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>No such key</body></html>\n"

CASES: dict[str, Case] = {
    "photo.jpg": lambda p: (p.jpeg, p.shown),
    "progressive.jpg": lambda p: (_pillow(p.image, "JPEG", progressive=True), p.shown),
    "trailing-garbage.jpg": _trailing_garbage,
    "gray.jpg": lambda p: (_pillow(p.image.convert("L"), "JPEG"), p.shown),
    "gray.png": lambda p: (_pillow(p.image.convert("L"), "PNG"), p.shown),
    "gray16.png": _gray16,
    "rgb16.png": _rgb16,
    "rgba.png": _rgba,
    "palette.png": lambda p: (_pillow(p.image.quantize(64), "PNG", transparency=0), p.shown),
    "cmyk.jpg": lambda p: (_pillow(p.image.convert("CMYK"), "JPEG", quality=95), p.shown),
    "one-pixel.png": lambda p: (_pillow(p.image.resize((1, 1)), "PNG"), _shown(1, 1)),
    "wide.png": lambda p: (_pillow(p.image.resize((10_000, 3)), "PNG"), _shown(10_000, 3)),
    "tall.png": lambda p: (_pillow(p.image.resize((3, 10_000)), "PNG"), _shown(3, 10_000)),
    "exif6.jpg": _exif_rotated(6),
    "exif8.jpg": _exif_rotated(8),
    "photo.tif": lambda p: (_pillow(p.image, "TIFF", compression="tiff_lzw"), p.shown),
    "photo.bmp": lambda p: (_pillow(p.image, "BMP"), p.shown),
    "photo.webp": lambda p: (_pillow(p.image, "WEBP", quality=80), p.shown),
    "lossless.webp": lambda p: (_pillow(p.image, "WEBP", lossless=True), p.shown),
    "empty.jpg": lambda p: (b"", _fails("decode: empty file")),
    "truncated.jpg": lambda p: (
        _half(p.jpeg),
        _fails("decode: truncated JPEG: no end-of-image marker after the image data"),
    ),
    "truncated-header.jpg": lambda p: (
        p.jpeg[: p.jpeg.index(b"\xff\xda")],
        _fails("decode: truncated JPEG: ends inside the header"),
    ),
    "truncated-after-preview.jpg": _truncated_after_preview,
    "damaged-data.jpg": _damaged_data,
    "unreadable-scan.jpg": _unreadable_scan,
    "truncated.png": lambda p: (
        _half(_pillow(p.image, "PNG")),
        _fails("decode: truncated PNG: ends inside the IDAT chunk"),
    ),
    "no-iend.png": lambda p: (_pillow(p.image, "PNG")[:-12], _fails("decode: truncated PNG: no IEND chunk")),
    "truncated.webp": lambda p: (_half(_pillow(p.image, "WEBP")), _fails("decode: truncated WebP: ")),
    "truncated.tif": lambda p: (_half(_pillow(p.image, "TIFF")), _fails("decode: truncated or corrupt TIFF: ")),
    "text.png": lambda p: (b"just notes\n", _fails("decode: not a decodable image (bytes look like text)")),
    "document.jpg": lambda p: (_PDF, _fails("decode: not a decodable image (bytes look like PDF)")),
    "page.jpg": lambda p: (_HTML, _fails("decode: not a decodable image (bytes look like HTML)")),
    "archive.png": _zip,
    "actually-gif.png": lambda p: (
        _pillow(p.image, "GIF"),
        _fails("decode: not a decodable image (bytes look like GIF)"),
    ),
    "random.webp": lambda p: (
        np.random.default_rng(0).bytes(4096),
        _fails("decode: not a decodable image (unrecognised bytes)"),
    ),
    "bomb.png": _bomb,
}
"""Every file of the corpus, by name (its extension is the one the job lists it by), and how to make it."""
