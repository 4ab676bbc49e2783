"""Videos and their tracks made by hand, the input the tests of every format of tracks share: two videos, one
detected at every frame and one at every third, tracks with a gap of more than one sampling step, a track ending on
the video's last frame, one whose steps vary by a frame (as ``--video-fps`` rounds them), and two classes."""

from __future__ import annotations

import numpy as np

from exports.records import Categories, Track, VideoTracks
from tests.support.frame_records import ROOT

TRACK_CATEGORIES = Categories(names=("person", 'odd "car" & <co>'), model_version="yolo_nas_s@0123456789ab")
PIXEL_TOLERANCE = 1e-3
"""Corners are written with two decimals, and the sample's lie on a quarter-pixel grid: read back exactly."""


def track(track_id: int, category: int, frames: list[int], fps: float, first: tuple[float, ...], move: float) -> Track:
    """A track at ``frames`` whose box starts at ``first`` (x1 y1 x2 y2) and shifts by ``move`` px right and down
    per keyframe; scores fall from 0.9 to 0.5."""
    index = np.array(frames, dtype=np.int64)
    steps = np.arange(len(frames), dtype=np.float32)[:, None]
    return Track(
        track_id=track_id,
        category=category,
        frames=index,
        times=index / fps,
        scores=np.linspace(0.9, 0.5, len(frames), dtype=np.float32),
        boxes=np.array(first, dtype=np.float32) + steps * np.float32(move),
    )


def sample_videos() -> list[VideoTracks]:
    """Two videos, sorted by source URI as the writers receive them."""
    clip = VideoTracks(
        source_uri=f"file://{ROOT}/camera/clip.mp4",
        name="camera/clip.mp4",
        fps=25.0,
        frame_count=30,
        width=640,
        height=480,
        frame_step=1,
        tracks=(
            track(1, 0, [0, 1, 2, 3, 10, 11, 12], 25.0, (10.25, 20.5, 60.75, 120.0), 2.25),  # not seen at 4..9
            track(2, 1, [26, 27, 28, 29], 25.0, (590.0, 400.0, 630.0, 470.0), -1.5),  # to the last frame
        ),
    )
    walk = VideoTracks(
        source_uri="s3://bucket/camera/walk.mp4",
        name="camera/walk.mp4",
        fps=30.0,
        frame_count=40,
        width=320,
        height=240,
        frame_step=3,
        tracks=(
            track(1, 1, [0, 3, 6, 9, 18, 21], 30.0, (0.0, 0.0, 32.5, 48.25), 3.0),  # not seen at 12 and 15
            track(2, 0, [30, 33], 30.0, (100.25, 50.5, 140.75, 90.0), 0.5),
            track(3, 0, [12, 15, 19], 30.0, (200.0, 100.0, 250.5, 180.75), 1.25),  # 4 frames: still one step
        ),
    )
    return [clip, walk]
