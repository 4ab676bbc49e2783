"""Decoding and letterboxing of frames, exactly as super-gradients' ``predict()`` prepares them.

The reference pipeline (``default_yolo_nas_coco_processing_params``) rescales the longest side to fit 636,
pads to 640x640 with 114 (centred), feeds RGB and divides by 255. Any mistake here (channel order, rounding,
padding side) silently degrades detections, so the geometry is kept in one small, tested place, and the
float normalisation is left to the model side (``workers.detector``) where it runs batched on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


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
    """A frame placed on the model canvas, and how to map boxes on the canvas back to the frame."""

    image: np.ndarray
    """(canvas_h, canvas_w, 3) uint8, in the channel order the model is fed."""
    height: int
    width: int
    scale: float
    pad_top: int
    pad_left: int


def decode_image(data: bytes) -> np.ndarray:
    """Decode encoded image bytes to an (H, W, 3) uint8 RGB array, EXIF orientation applied.

    OpenCV converts grayscale, palette, 16-bit and alpha images to 8-bit 3-channel colour, and applies the
    EXIF orientation so that boxes are in the orientation people see.
    """
    if not data:
        raise DecodeError("empty file")
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DecodeError("not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def letterbox(rgb: np.ndarray, spec: LetterboxSpec) -> Letterboxed:
    """Rescale ``rgb`` into ``spec.fit`` (aspect kept, bilinear) and pad it onto ``spec.canvas``.

    Rounding follows super-gradients: ``scale = min(fit_h / h, fit_w / w)``, new size ``round(h * scale)``,
    centre padding puts the odd pixel at the bottom/right, and boxes map back by ``(box - pad) / scale``.
    """
    height, width = rgb.shape[:2]
    scale = min(spec.fit[0] / height, spec.fit[1] / width)
    image = rgb[..., ::-1] if spec.bgr else rgb
    if scale != 1.0:
        size = (round(width * scale), round(height * scale))
        image = cv2.resize(np.ascontiguousarray(image), dsize=size, interpolation=cv2.INTER_LINEAR)
    new_h, new_w = image.shape[:2]
    canvas_h, canvas_w = spec.canvas
    if new_h > canvas_h or new_w > canvas_w:
        raise ValueError(f"letterbox: rescaled frame {new_w}x{new_h} exceeds the {canvas_w}x{canvas_h} canvas")
    pad_top = (canvas_h - new_h) // 2 if spec.centre else 0
    pad_left = (canvas_w - new_w) // 2 if spec.centre else 0
    out = np.full((canvas_h, canvas_w, 3), spec.pad_value, dtype=np.uint8)
    out[pad_top : pad_top + new_h, pad_left : pad_left + new_w] = image
    return Letterboxed(image=out, height=height, width=width, scale=scale, pad_top=pad_top, pad_left=pad_left)
