"""What every export format receives: one frame at a time with its boxes, or for the formats of tracks one video
at a time with its tracks, after selection and class mapping.

The readers (``exports.reader``, ``exports.tracks_reader``) yield ``FrameRecord`` or ``VideoTracks`` values in a
stable order (by source URI, then frame index); each writer (``exports.formats``) turns them into its files.
Writers never read Parquet themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from schemas.manifest import ModelInfo


@dataclass(frozen=True)
class Box:
    """One detection, in pixels of the original (orientation-applied) image, clipped to it."""

    category: int
    """Index into ``Categories.names`` (0-based; a format that numbers from 1 adds 1 itself)."""
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Categories:
    """The output's classes, in order, after ``--classes`` kept, renamed or merged the model's."""

    names: tuple[str, ...]
    model_version: str | None = None
    """The model and weights the exported boxes come from, as ``model_version()`` names them; several joined by
    ``+`` when the exported rows come from runs with different weights. Formats that record it (Label Studio's
    ``model_version``) say which predictions a tool shows; None where the reader could not tell."""


def model_version(model: ModelInfo) -> str:
    """The model's name and the first 12 hex digits of its weights' SHA-256 (``yolo_nas_s@1a2b3c4d5e6f``): the
    name alone would not tell a fine-tuned checkpoint from the pretrained one."""
    return f"{model.name}@{model.weights_sha256[:12]}"


@dataclass(frozen=True)
class FrameRecord:
    """One ``ok`` frame of the output (the newest row for it, unless a run was named) and its kept boxes."""

    source_uri: str
    """As in the tables: ``file://`` + absolute path, or ``s3://bucket/key``."""
    frame_index: int
    timestamp_s: float | None
    """None for a still image."""
    width: int
    height: int
    run_id: str
    is_video: bool
    name: str
    """A stable, relative, safe name for the frame's image: the input's path relative to its source root for an
    image (``folder/photo.jpg``), ``<video path>/frame_%06d.jpg`` for a video frame. Unique within an export."""
    split: str | None
    """``train``/``val``/... from ``--split`` (deterministic by URI hash), None without ``--split``."""
    boxes: tuple[Box, ...]
    error: str | None = None
    """The row's ``error`` (``stage: cause``) for a frame that failed, exported only with ``--errors``: then it
    has no boxes, and width and height are 0 where the frame could not be decoded. None for an ``ok`` frame."""


class FormatWriter(Protocol):
    """A format's writer: ``write`` every frame in order, then ``close`` once; files appear under the target."""

    def write(self, frame: FrameRecord) -> None: ...

    def close(self) -> list[str]:
        """Finish the files and return their paths relative to the target, for the summary."""
        ...


@dataclass(frozen=True)
class Track:
    """One object followed over a video (``yolonas-batch track``): its boxes at the frames where the detector
    found it (the keyframes), in frame order. Between keyframes the object is where an annotation tool
    interpolates it; a stretch with no keyframe longer than one sampling step means it was not seen."""

    track_id: int
    """1-based, unique within its video, stable for the same detections and tracker settings."""
    category: int
    """Index into ``Categories.names``."""
    frames: np.ndarray
    """int64 ``frame_index`` of each keyframe (0-based, absolute in the video), ascending."""
    times: np.ndarray
    """float64 ``timestamp_s`` of each keyframe."""
    scores: np.ndarray
    """float32 detection score of each keyframe."""
    boxes: np.ndarray
    """float32 (n, 4) ``x1 y1 x2 y2`` in pixels of the displayed frame: the detections' own boxes."""


@dataclass(frozen=True)
class VideoTracks:
    """A video and its tracks, as the formats of tracks receive it (one at a time, sorted by source URI)."""

    source_uri: str
    name: str
    """The video's safe relative path (``exports.naming.relative_name``): ``camera/clip.mp4``."""
    fps: float
    """The video's own frame rate (not the sampling rate)."""
    frame_count: int
    """Frames in the whole video (the container's count, or the last frame seen + 1)."""
    width: int
    height: int
    """Of the displayed frame (rotation applied), as the boxes are."""
    frame_step: int
    """Frames between two sampled frames (``--video-stride``, or the rounded ratio for ``--video-fps``); 1 when
    every frame was detected."""
    tracks: tuple[Track, ...]
    """Sorted by ``track_id``."""

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


class TrackWriter(Protocol):
    """A format of tracks: ``write`` every video in order, then ``close`` once; files appear under the target."""

    def write(self, video: VideoTracks) -> None: ...

    def close(self) -> list[str]:
        """Finish the files and return their paths relative to the target, for the summary."""
        ...
