"""Batches of letterboxed frames, the model's input, assembled with one write of each frame's pixels.

A frame is rescaled on its own (``workers.letterbox.letterbox``) and placed on its canvas slot in the batch
array straight away, so the rescaled pixels are freed, and their memory reused, before the next frame is
decoded. Making a canvas per frame and stacking them afterwards costs far more: a fresh canvas is mostly page
faults, and the stack copies every pixel again.
No torch here: the decode stage builds these batches in workers that never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from schemas.choices import DEFAULT_MAX_PIXELS
from workers.decoding import prepare_image
from workers.image_checks import displayed_size, read_header
from workers.letterbox import Letterboxed, LetterboxSpec, Placement, place

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class FrameBatch:
    """Letterboxed frames and the geometry to map boxes back; arrays share the first (batch) axis."""

    images: "np.ndarray | torch.Tensor"
    """(B, canvas_h, canvas_w, 3) uint8 in the channel order the model is fed: a NumPy array, or a tensor already
    on the model's device (``workers.device_frames``)."""
    heights: np.ndarray
    widths: np.ndarray
    scales: np.ndarray
    pad_tops: np.ndarray
    pad_lefts: np.ndarray

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def slice(self, start: int, stop: int) -> "FrameBatch":
        """Frames ``start`` to ``stop`` (views, no copy)."""
        return FrameBatch(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})

    @classmethod
    def stack(cls, frames: Sequence[Letterboxed]) -> "FrameBatch":
        """Batch frames that were all prepared beforehand (tests, one-off use); a stream of frames is cheaper
        through ``FrameBatchBuilder``, which places each as it comes."""
        builder = FrameBatchBuilder(frames[0].spec, len(frames))
        for frame in frames:
            builder.add(frame)
        return builder.build()


_NO_FRAME = (0, 0, 1.0, 0, 0)
"""Geometry recorded for a slot without a frame (an input that failed): a blank canvas, no boxes to map."""


def _geometry_columns(geometry: list[tuple[int, int, float, int, int]]) -> dict[str, np.ndarray]:
    """The decode stage's columns that map boxes on the canvas back to the frame."""
    heights, widths, scales, pad_tops, pad_lefts = zip(*geometry) if geometry else ((),) * 5
    return {
        "height": np.array(heights, dtype=np.int32),
        "width": np.array(widths, dtype=np.int32),
        "scale": np.array(scales, dtype=np.float64),
        "pad_top": np.array(pad_tops, dtype=np.int32),
        "pad_left": np.array(pad_lefts, dtype=np.int32),
    }


class FrameBatchBuilder:
    """Places up to ``capacity`` frames, one at a time, in one preallocated batch array."""

    def __init__(self, spec: LetterboxSpec, capacity: int) -> None:
        self._spec = spec
        # Pages of slots never used are never touched, so a batch that ends early costs no memory for them.
        self._images = np.empty((capacity, *spec.canvas, 3), dtype=np.uint8)
        self._geometry: list[tuple[int, int, float, int, int]] = []

    def full(self) -> bool:
        return len(self._geometry) == len(self._images)

    def add(self, frame: "Letterboxed | EncodedJpeg | None") -> None:
        """Place ``frame`` in the next slot (None: a blank canvas); the builder keeps no reference to it."""
        if isinstance(frame, EncodedJpeg):
            raise TypeError("an encoded JPEG is decoded on the model's device: batch it with PayloadBatchBuilder")
        slot = self._images[len(self._geometry)]
        if frame is None:
            slot[...] = self._spec.pad_value
            self._geometry.append(_NO_FRAME)
        else:
            frame.place(slot)
            self._geometry.append((frame.height, frame.width, frame.scale, frame.pad_top, frame.pad_left))

    def build(self) -> FrameBatch:
        """The frames added so far, as a batch (its images are a view of the builder's array)."""
        return frame_batch(self.columns())

    def columns(self) -> dict[str, np.ndarray]:
        """The frames added so far as the decode stage's columns: ``image`` and the geometry."""
        return {"image": self._images[: len(self._geometry)], **_geometry_columns(self._geometry)}


def frame_batch(columns: Mapping[str, Any], rows: "np.ndarray | slice" = slice(None)) -> FrameBatch:
    """``rows`` of the decode stage's columns (``FrameBatchBuilder.columns``) as a batch; ``image`` may be a tensor
    (``workers.device_frames``)."""
    return FrameBatch(
        images=columns["image"][rows],
        heights=columns["height"][rows],
        widths=columns["width"][rows],
        scales=columns["scale"][rows],
        pad_tops=columns["pad_top"][rows],
        pad_lefts=columns["pad_left"][rows],
    )


@dataclass(frozen=True)
class EncodedJpeg:
    """A JPEG left encoded for the model's device to decode (``--decode device``), with where it will land."""

    data: bytes
    height: int
    width: int
    """Of the image as displayed (orientation applied)."""
    placement: Placement

    @classmethod
    def of(cls, data: bytes, spec: LetterboxSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> "EncodedJpeg | None":
        """``data`` ready to travel, if it is a JPEG (None: another format, to decode on the CPU), after the checks
        every decode makes first (a ``DecodeError``); a ``ValueError`` when it would not fit the canvas."""
        header = read_header(data, max_pixels)
        if header.kind != "JPEG":
            return None
        height, width = displayed_size(data, header)
        return cls(data, height, width, place(height, width, spec))


class PayloadBatchBuilder:
    """The ``--decode device`` counterpart of ``FrameBatchBuilder``: each row's payload is either a JPEG's own
    bytes (``jpeg``), which the model's device decodes and letterboxes, or a frame the CPU letterboxed (videos,
    other formats), as its rescaled pixels in the model's channel order. The canvas is made on the device, so
    no padding crosses the object store."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._payloads: list[bytes] = []
        self._jpeg: list[bool] = []
        self._geometry: list[tuple[int, int, float, int, int]] = []

    def full(self) -> bool:
        return len(self._geometry) == self._capacity

    def add(self, frame: Letterboxed | EncodedJpeg | None) -> None:
        """The next row's payload (None: none, a blank canvas)."""
        if frame is None:
            payload, jpeg, geometry = b"", False, _NO_FRAME
        elif isinstance(frame, EncodedJpeg):
            where = frame.placement
            payload, jpeg = frame.data, True
            geometry = (frame.height, frame.width, where.scale, where.pad_top, where.pad_left)
        else:
            payload, jpeg = frame.model_pixels().tobytes(), False
            geometry = (frame.height, frame.width, frame.scale, frame.pad_top, frame.pad_left)
        self._payloads.append(payload)
        self._jpeg.append(jpeg)
        self._geometry.append(geometry)

    def columns(self) -> dict[str, np.ndarray]:
        """The rows added so far as the decode stage's columns: ``payload``, ``jpeg`` and the geometry."""
        payloads = np.empty(len(self._payloads), dtype=object)
        payloads[:] = self._payloads
        return {
            "payload": payloads,
            "jpeg": np.array(self._jpeg, dtype=bool),
            **_geometry_columns(self._geometry),
        }


def payload_columns(images: Sequence[bytes], spec: LetterboxSpec) -> dict[str, np.ndarray]:
    """Encoded images as the decode stage passes them on under ``--decode device``, for use in-process (benchmarks,
    tests): JPEGs as they are, other formats decoded and letterboxed here."""
    builder = PayloadBatchBuilder(len(images))
    for data in images:
        builder.add(EncodedJpeg.of(data, spec) or prepare_image(data, spec))
    return builder.columns()
