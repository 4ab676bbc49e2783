"""A frame rescaled and padded for the model exactly as super-gradients' ``predict()`` prepares it.

The reference processing (``default_yolo_nas_coco_processing_params``) rescales the longest side to fit 636, pads
to 640x640 with 114 (centred), feeds RGB and divides by 255. Any mistake here (channel order, rounding, padding
side) silently degrades detections, so the geometry is kept in this one small, tested place, and the float
normalisation is left to the model side (``workers.detector``), where it runs batched on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Channels = Literal["rgb", "bgr"]
"""Order of the colour channels in a decoded array; "bgr" is OpenCV's own."""


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

    The rescaled pixels are not placed on a canvas here: ``workers.frames`` writes them straight into the batch
    array the model reads.
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
        # OpenCV swaps the channels straight into the view, far faster than NumPy copies a reversed view.
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


@dataclass(frozen=True)
class Placement:
    """Where a ``height`` x ``width`` frame lands on the model canvas: the letterbox's geometry without pixels."""

    size: tuple[int, int]
    """(height, width) of the rescaled frame."""
    scale: float
    pad_top: int
    pad_left: int


def letterbox(
    image: np.ndarray, spec: LetterboxSpec, channels: Channels = "rgb", full: tuple[int, int] | None = None
) -> Letterboxed:
    """Rescale ``image`` (channels in ``channels`` order) into ``spec.fit``, aspect kept, bilinear.

    ``full``: the (height, width) of the image ``image`` was decoded reduced from (``workers.decoding.decode_for``);
    the geometry, and so the boxes mapped back, are those of the full image, only the pixels come from the reduced
    one. Bilinear rescaling treats each channel alone, so swapping the channels after it gives the same pixels as
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


def place(height: int, width: int, spec: LetterboxSpec) -> Placement:
    """The letterbox geometry of a ``height`` x ``width`` frame, rounded as super-gradients rounds it: centre
    padding puts the odd pixel at the bottom/right, and boxes map back by ``(box - pad) / scale``. A ``ValueError``
    when the rescaled frame would not fit the canvas (a spec whose fit exceeds its canvas)."""
    scale, size = _fit(height, width, spec)
    canvas_h, canvas_w = spec.canvas
    if size[0] > canvas_h or size[1] > canvas_w:
        raise ValueError(f"letterbox: rescaled frame {size[1]}x{size[0]} exceeds the {canvas_w}x{canvas_h} canvas")
    return Placement(
        size=size,
        scale=scale,
        pad_top=(canvas_h - size[0]) // 2 if spec.centre else 0,
        pad_left=(canvas_w - size[1]) // 2 if spec.centre else 0,
    )


def target_size(height: int, width: int, spec: LetterboxSpec) -> tuple[int, int]:
    """(height, width) of a ``height`` x ``width`` image rescaled into ``spec.fit``, as ``letterbox`` rounds it."""
    return _fit(height, width, spec)[1]


def _fit(height: int, width: int, spec: LetterboxSpec) -> tuple[float, tuple[int, int]]:
    """super-gradients' ``scale = min(fit_h / h, fit_w / w)`` and the rescaled size ``round(h * scale)``; a side
    that would round to 0 pixels (a 10000x3 strip) is kept at 1, where super-gradients' resize fails."""
    scale = min(spec.fit[0] / height, spec.fit[1] / width)
    return scale, (max(1, round(height * scale)), max(1, round(width * scale)))
