"""Batches of letterboxed frames, the model's input, assembled with one write of each frame's pixels.

A frame is rescaled on its own (``workers.preprocess.letterbox``) and placed on its canvas slot in the batch
array straight away, so the rescaled pixels are freed, and their memory reused, before the next frame is
decoded. Making a canvas per frame and stacking them afterwards costs far more: a fresh canvas is mostly page
faults, and the stack copies every pixel again.
No torch here: the decode stage builds these batches in workers that never import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from workers.preprocess import Letterboxed, LetterboxSpec


@dataclass(frozen=True)
class FrameBatch:
    """Letterboxed frames and the geometry to map boxes back; arrays share the first (batch) axis."""

    images: np.ndarray
    """(B, canvas_h, canvas_w, 3) uint8 in the channel order the model is fed."""
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


class FrameBatchBuilder:
    """Places up to ``capacity`` frames, one at a time, in one preallocated batch array."""

    def __init__(self, spec: LetterboxSpec, capacity: int) -> None:
        self._spec = spec
        # Pages of slots never used are never touched, so a batch that ends early costs no memory for them.
        self._images = np.empty((capacity, *spec.canvas, 3), dtype=np.uint8)
        self._geometry: list[tuple[int, int, float, int, int]] = []

    def full(self) -> bool:
        return len(self._geometry) == len(self._images)

    def add(self, frame: Letterboxed | None) -> None:
        """Place ``frame`` in the next slot (None: a blank canvas); the builder keeps no reference to it."""
        slot = self._images[len(self._geometry)]
        if frame is None:
            slot[...] = self._spec.pad_value
            self._geometry.append(_NO_FRAME)
        else:
            frame.place(slot)
            self._geometry.append((frame.height, frame.width, frame.scale, frame.pad_top, frame.pad_left))

    def build(self) -> FrameBatch:
        """The frames added so far, as a batch (its images are a view of the builder's array)."""
        heights, widths, scales, pad_tops, pad_lefts = zip(*self._geometry) if self._geometry else ((),) * 5
        return FrameBatch(
            images=self._images[: len(self._geometry)],
            heights=np.array(heights, dtype=np.int32),
            widths=np.array(widths, dtype=np.int32),
            scales=np.array(scales, dtype=np.float64),
            pad_tops=np.array(pad_tops, dtype=np.int32),
            pad_lefts=np.array(pad_lefts, dtype=np.int32),
        )
