"""What the formats of tracks (``label-studio-video``, ``cvat-video``, ``mot``) share: where a track is seen, and
one file or folder name per video.

A track's keyframes are the sampled frames where the detector found the object. Between two keyframes one sampling
step apart an annotation tool interpolates the box; a longer gap means the object was not seen there, so each
format ends the visible stretch at the keyframe before it (Label Studio: ``enabled: false``; CVAT: an ``outside``
box one step later). CVAT's own MOT import draws the same line: a gap longer than one frame step.
"""

from __future__ import annotations

import posixpath

import numpy as np

from exports.naming import flat_name

GAP_STEPS = 1.5
"""A gap between keyframes of more than this many sampling steps ends a visible stretch. Half a step of slack:
with ``--video-fps`` the sampled frames are a rounded step apart, so one step may be a frame longer or shorter."""


def stretch_ends(frames: np.ndarray, frame_step: int) -> np.ndarray:
    """Per keyframe (``frames``: ascending frame indices), whether the object's visible stretch ends there: the
    next keyframe is more than one sampling step later, or there is none."""
    return np.append(np.diff(frames) > GAP_STEPS * frame_step, True)


class VideoStems:
    """One name per video for its file or folder (``camera__clip`` for ``camera/clip.mp4``): the video's flat name
    without its extension, as tools name a sequence, unique within an export.

    Distinct flat names keep distinct stems except for videos that differ only by extension (``a.mp4``,
    ``a.avi``); the later one keeps its extension in its stem (``a.avi``), numbered if even that is taken."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, video_name: str) -> str:
        flat = flat_name(video_name)
        stem = posixpath.splitext(flat)[0]
        if stem in self._used:
            stem = flat
        candidate, number = stem, 1
        while candidate in self._used:
            number += 1
            candidate = f"{stem}-{number}"
        self._used.add(candidate)
        return candidate
