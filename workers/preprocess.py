"""Decoding and letterboxing of frames, exactly as super-gradients' ``predict()`` prepares them.

The reference pipeline (``default_yolo_nas_coco_processing_params``) rescales the longest side to fit 636,
pads to 640x640 with 114 (centred), feeds RGB and divides by 255. Any mistake here (channel order, rounding,
padding side) silently degrades detections, so the geometry is kept in one small, tested place, and the
float normalisation is left to the model side (``workers.detector``) where it runs batched on the device.

Decoding takes untrusted bytes, so before OpenCV sees them ``decode_image`` checks what they are (one of
the job's formats: JPEG, PNG, WebP, BMP, TIFF), how many pixels the header declares (a small file can declare
a gigapixel image) and, where the format makes it cheap, whether the file is whole: a cut JPEG would otherwise
come back half grey from OpenCV 4 (libjpeg only warns), and as a bare ``None`` from OpenCV 5. Every refusal is
a ``DecodeError`` whose one-line message says the cause.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import imagesize
import numpy as np

from schemas.choices import DEFAULT_MAX_PIXELS

Channels = Literal["rgb", "bgr"]
"""Order of the colour channels in a decoded array; "bgr" is OpenCV's own."""


class DecodeError(ValueError):
    """The bytes are not an image this job can decode."""


@dataclass(frozen=True)
class LetterboxSpec:
    """How a frame becomes a model input: the geometry and colour of super-gradients' image processor."""

    fit: tuple[int, int] = (636, 636)
    """(height, width) box the image is rescaled into, keeping its aspect ratio."""
    canvas: tuple[int, int] = (640, 640)
    """(height, width) of the padded model input."""
    pad_value: int = 114
    centre: bool = True
    """Centre padding (True) or image in the top-left corner (False)."""
    bgr: bool = False
    """Feed BGR instead of RGB (a processor with ``ReverseImageChannels``)."""
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    """Model input = (pixel - mean) / std, per channel in the order the model is fed."""


@dataclass(frozen=True)
class Letterboxed:
    """A frame rescaled for the model canvas, and how to map boxes on the canvas back to the frame.

    The rescaled pixels are not placed on a canvas here: ``workers.frames`` writes them straight into the
    batch array the model reads.
    """

    pixels: np.ndarray
    """(rescaled_h, rescaled_w, 3) uint8, the frame rescaled into ``spec.fit``."""
    swap: bool
    """Whether ``pixels`` has its channels in the opposite order to the one the model is fed."""
    spec: LetterboxSpec
    height: int
    width: int
    scale: float
    pad_top: int
    pad_left: int

    def place(self, canvas: np.ndarray) -> None:
        """Write the frame onto ``canvas`` ((canvas_h, canvas_w, 3) uint8), padding included."""
        top, left = self.pad_top, self.pad_left
        height, width = self.pixels.shape[:2]
        value = self.spec.pad_value
        canvas[:top] = value
        canvas[top + height :] = value
        canvas[top : top + height, :left] = value
        canvas[top : top + height, left + width :] = value
        region = canvas[top : top + height, left : left + width]
        if not self.swap:
            region[...] = self.pixels
            return
        # OpenCV swaps the channels 30x faster than a reversed NumPy view copies them.
        written = cv2.cvtColor(self.pixels, cv2.COLOR_BGR2RGB, dst=region)
        if written.ctypes.data != region.ctypes.data:  # OpenCV gave a new array instead of filling the view
            region[...] = written

    def model_pixels(self) -> np.ndarray:
        """The rescaled pixels in the channel order the model is fed (a copy only when they must be swapped)."""
        return cv2.cvtColor(self.pixels, cv2.COLOR_BGR2RGB) if self.swap else self.pixels

    @property
    def image(self) -> np.ndarray:
        """The frame alone on a canvas of its own, in the channel order the model is fed."""
        canvas = np.empty((*self.spec.canvas, 3), dtype=np.uint8)
        self.place(canvas)
        return canvas


REDUCED_DECODES = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
"""libjpeg's scaled decodes OpenCV offers, largest reduction first: the DCT is decoded at 1/8, 1/4 or 1/2 of the
size, so a 12 MP photo decodes about as fast as a 0.75 MP one (docs/performance.md)."""


@dataclass(frozen=True)
class Decoded:
    """A decoded image and the size of the image it stands for: the same, unless libjpeg decoded it reduced."""

    image: np.ndarray
    height: int
    width: int
    """Of the full image, displayed (EXIF orientation applied): what boxes are mapped back to."""


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, channels: Channels = "rgb") -> np.ndarray:
    """The full image (``decode_for`` with no letterbox to fit): see there."""
    return decode_for(data, None, max_pixels, channels).image


def decode_for(
    data: bytes, spec: LetterboxSpec | None, max_pixels: int = DEFAULT_MAX_PIXELS, channels: Channels = "rgb"
) -> Decoded:
    """Decode encoded image bytes to an (H, W, 3) uint8 array, EXIF orientation applied.

    ``channels="bgr"`` leaves OpenCV's own order and skips a conversion of every decoded pixel; ``letterbox``
    then swaps the channels after the rescale, on fewer pixels for a photo larger than the canvas.

    OpenCV (``IMREAD_COLOR``) converts grayscale and palette images to colour, 16-bit samples to 8-bit by
    keeping the high byte (``value >> 8``; Pillow, and so super-gradients' ``predict()`` on a path, clips a
    16-bit grayscale PNG to white instead), drops alpha without compositing (as Pillow's ``convert("RGB")``
    does), converts CMYK JPEGs to RGB, and applies the EXIF orientation so that boxes are in the orientation
    people see. Refused with a ``DecodeError`` before any pixel is decoded: empty data, bytes that are not one
    of the job's formats, an image above ``max_pixels``, a JPEG, PNG or WebP that is cut short.

    The declared size comes from ``imagesize``, a pure-Python reader of the header fields only (microseconds,
    no allocation in proportion to the image). Pillow's ``Image.open`` would also read only the header, but
    it applies its own process-wide bomb limit first and then reports a pixel count without the size.

    With ``spec``, a JPEG at least twice the letterbox's target size is decoded by libjpeg at the largest
    reduction (1/2, 1/4, 1/8) whose pixels still cover that size (``jpeg_reduction``): the letterbox then rescales
    less, from pixels libjpeg averaged, and boxes still map back to the full image's pixels.
    """
    header = read_header(data, max_pixels)
    kind, width, height = header.kind, header.width, header.height
    factor = jpeg_reduction(width, height, spec) if spec is not None and kind == "JPEG" else 1
    flag = dict(REDUCED_DECODES).get(factor, cv2.IMREAD_COLOR)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if bgr is None:
        raise DecodeError(f"truncated or corrupt {kind}: OpenCV could not decode the {width}x{height} image")
    image = bgr if channels == "bgr" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    if factor == 1:
        return Decoded(image, *image.shape[:2])
    # EXIF orientation may have turned the image: the decoded shape tells which way the full size goes.
    turned = image.shape[:2] != (-(-height // factor), -(-width // factor))
    return Decoded(image, *((width, height) if turned else (height, width)))


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares, read before any pixel is decoded."""

    kind: str
    """One of the job's formats: JPEG, PNG, WebP, BMP, TIFF."""
    width: int
    height: int
    """As stored, before any EXIF orientation."""


def read_header(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """The format and stored size of encoded image bytes, after the checks every decode makes first: a
    ``DecodeError`` for empty data, bytes that are not one of the job's formats, an image above ``max_pixels``, a
    JPEG, PNG or WebP that is cut short (``decode_for`` says why each matters)."""
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


def jpeg_reduction(width: int, height: int, spec: LetterboxSpec) -> int:
    """The largest libjpeg reduction (8, 4, 2; 1: none) whose decoded size, ``ceil(side / factor)``, still covers
    the letterbox's target size of a ``width`` x ``height`` image, in either orientation (EXIF may turn it)."""
    for factor, _ in REDUCED_DECODES:
        reduced = (-(-width // factor), -(-height // factor))
        if all(
            reduced[0] >= target_w and reduced[1] >= target_h
            for target_h, target_w in (target_size(height, width, spec), target_size(width, height, spec)[::-1])
        ):
            return factor
    return 1


def target_size(height: int, width: int, spec: LetterboxSpec) -> tuple[int, int]:
    """(height, width) of a ``height`` x ``width`` image rescaled into ``spec.fit``, as ``letterbox`` rounds it."""
    scale = min(spec.fit[0] / height, spec.fit[1] / width)
    return max(1, round(height * scale)), max(1, round(width * scale))


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

    Walks the header segments by their lengths, so that a preview JPEG inside an APP segment, with its own
    end marker, is stepped over, up to the first start-of-scan; after it the end-of-image marker FFD9 must
    follow somewhere. It cannot occur inside the entropy-coded data (a data byte FF is always followed by 00 or
    a restart marker), so finding it anywhere later means the scans are whole; bytes after it (camera
    trailers, padding) are ignored, as decoders ignore them. One ``bytes.rfind``, from the end where the marker
    normally is: microseconds (a forward search cost 5% of a 640x480 photo's decoding).
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

    Steps from chunk to chunk by the declared lengths (a few thousand steps for a large PNG), so bytes inside
    compressed data that happen to spell IEND are never mistaken for the end.
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


def letterbox(
    image: np.ndarray, spec: LetterboxSpec, channels: Channels = "rgb", full: tuple[int, int] | None = None
) -> Letterboxed:
    """Rescale ``image`` (channels in ``channels`` order) into ``spec.fit``, aspect kept, bilinear.

    ``full``: the (height, width) of the image ``image`` was decoded reduced from (``decode_for``); the geometry,
    and so the boxes mapped back, are those of the full image, only the pixels come from the reduced one.

    Rounding follows super-gradients: ``scale = min(fit_h / h, fit_w / w)``, new size ``round(h * scale)``,
    centre padding puts the odd pixel at the bottom/right, and boxes map back by ``(box - pad) / scale``.
    A side that would round to 0 pixels (a 10000x3 strip) is kept at 1, where super-gradients' resize fails.
    Bilinear rescaling treats each channel alone, so swapping the channels after it gives the same pixels as
    swapping them before.
    """
    height, width = full or image.shape[:2]
    placement = place(height, width, spec)
    if image.shape[:2] != placement.size:
        image = cv2.resize(image, dsize=placement.size[::-1], interpolation=cv2.INTER_LINEAR)
    return Letterboxed(
        pixels=image,
        swap=(channels == "bgr") != spec.bgr,
        spec=spec,
        height=height,
        width=width,
        scale=placement.scale,
        pad_top=placement.pad_top,
        pad_left=placement.pad_left,
    )


@dataclass(frozen=True)
class Placement:
    """Where a ``height`` x ``width`` frame lands on the model canvas: the letterbox's geometry without pixels."""

    size: tuple[int, int]
    """(height, width) of the rescaled frame."""
    scale: float
    pad_top: int
    pad_left: int


def place(height: int, width: int, spec: LetterboxSpec) -> Placement:
    """The letterbox geometry of a ``height`` x ``width`` frame (``letterbox`` says how it is rounded); a
    ``ValueError`` when the rescaled frame would not fit the canvas (a spec whose fit exceeds its canvas)."""
    size = target_size(height, width, spec)
    canvas_h, canvas_w = spec.canvas
    if size[0] > canvas_h or size[1] > canvas_w:
        raise ValueError(f"letterbox: rescaled frame {size[1]}x{size[0]} exceeds the {canvas_w}x{canvas_h} canvas")
    return Placement(
        size=size,
        scale=min(spec.fit[0] / height, spec.fit[1] / width),
        pad_top=(canvas_h - size[0]) // 2 if spec.centre else 0,
        pad_left=(canvas_w - size[1]) // 2 if spec.centre else 0,
    )


def prepare_image(
    data: bytes, spec: LetterboxSpec, max_pixels: int = DEFAULT_MAX_PIXELS, fast: bool = False
) -> Letterboxed:
    """Decode and letterbox encoded image bytes as the job does (OpenCV's channel order until the rescale; with
    ``fast``, a large JPEG decoded reduced)."""
    decoded = decode_for(data, spec if fast else None, max_pixels, channels="bgr")
    return letterbox(decoded.image, spec, "bgr", (decoded.height, decoded.width))
