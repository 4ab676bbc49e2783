"""Encoded image bytes to pixels, as the job decodes them: checked first (``workers.image_checks``), then decoded
by OpenCV, a large JPEG at a reduced size when only the letterbox's size is needed (``--decode fast``)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.choices import DEFAULT_MAX_PIXELS
from workers.image_checks import DecodeError, read_header
from workers.letterbox import Channels, Letterboxed, LetterboxSpec, letterbox, target_size

REDUCED_DECODES = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))
"""libjpeg's scaled decodes OpenCV offers, largest reduction first: the DCT is decoded at 1/8, 1/4 or 1/2 of the
size, so a large photo costs about what its reduced size costs (docs/performance.md measures it)."""


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
    """Decode encoded image bytes to an (H, W, 3) uint8 array, EXIF orientation applied, after ``read_header``'s
    checks (a ``DecodeError`` before any pixel is decoded).

    ``channels="bgr"`` leaves OpenCV's own order and skips a conversion of every decoded pixel; ``letterbox``
    then swaps the channels after the rescale, on fewer pixels for a photo larger than the canvas.

    OpenCV (``IMREAD_COLOR``) converts grayscale and palette images to colour, 16-bit samples to 8-bit by keeping
    the high byte (``value >> 8``; Pillow, and so super-gradients' ``predict()`` on a path, clips a 16-bit
    grayscale PNG to white instead), drops alpha without compositing (as Pillow's ``convert("RGB")`` does),
    converts CMYK JPEGs to RGB, and applies the EXIF orientation so that boxes are in the orientation people see.

    With ``spec``, a JPEG at least twice the letterbox's target size is decoded by libjpeg at the largest
    reduction whose pixels still cover that size (``jpeg_reduction``): the letterbox then rescales less, from
    pixels libjpeg averaged, and boxes still map back to the full image's pixels.
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


def prepare_image(
    data: bytes, spec: LetterboxSpec, max_pixels: int = DEFAULT_MAX_PIXELS, fast: bool = False
) -> Letterboxed:
    """Decode and letterbox encoded image bytes as the job does (OpenCV's channel order until the rescale; with
    ``fast``, a large JPEG decoded reduced)."""
    decoded = decode_for(data, spec if fast else None, max_pixels, channels="bgr")
    return letterbox(decoded.image, spec, "bgr", (decoded.height, decoded.width))
