"""Tracked outputs made without a model or Ray, for the unit tests of the track committer and the tracks reader:
videos' detections written by ``commit_run``, tracked by ``plan_videos`` and ``track_video`` as ``track``'s tasks
do. Boxes move in straight lines at high scores, so the default tracker follows each object as one track."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from common.storage import Location
from jobs.tracking.plan import plan_videos
from jobs.tracking.track_video import track_video
from schemas.manifest import TrackCommit
from schemas.track_config import TrackerSettings
from tests.support.outputs import Frame, commit_run, run_id

WIDTH, HEIGHT = 640, 480
CLIP, WALK = "file:///data/clip.mp4", "file:///data/walk.mp4"
WALK_SCORES = [0.7, 0.7] + [0.5] * 8
"""Mean 0.54: a track ``--min-score 0.6`` drops, though two of its boxes clear it."""
Box = tuple[str, float, float, float, float, float]
"""(class name, score, x1, y1, x2, y2), as ``outputs.Frame`` holds a box."""


def moving(name: str, scores: list[float], start: tuple[float, float], step: float = 4.0) -> list[Box]:
    """One object's box on consecutive sampled frames, 50x100 px, moving ``step`` px right per frame."""
    x, y = start
    return [(name, score, x + i * step, y, x + 50 + i * step, y + 100) for i, score in enumerate(scores)]


def video_frames(uri: str, indices: list[int], *objects: list[Box]) -> list[Frame]:
    """The frames ``indices`` of a video, each with the ``i``-th box of every object (an object whose list is
    shorter is gone from then on)."""
    return [
        Frame(uri, [boxes[i] for boxes in objects if i < len(boxes)], index=index, width=WIDTH, height=HEIGHT)
        for i, index in enumerate(indices)
    ]


def commit_videos(out: Location) -> None:
    """Walk (shard 0, every third frame): a person scored ``WALK_SCORES``. Clip (shard 1, every frame): a person
    (0.9) and a car (0.8)."""
    walk = video_frames(WALK, list(range(0, 30, 3)), moving("person", WALK_SCORES, (50, 50)))
    clip = video_frames(
        CLIP, list(range(8)), moving("person", [0.9] * 8, (100, 100)), moving("car", [0.8] * 8, (400, 300))
    )
    commit_run(out, run_id(3), {"00000": walk, "00001": clip})


def track_all(out: Location, settings: TrackerSettings | None = None) -> list[TrackCommit]:
    """Track every video of ``out`` as ``track`` does (no Ray), sorted by URI; one commit each."""
    settings = settings or TrackerSettings()
    return [track_video(out, work, settings) for work in plan_videos(out, None, settings)]


def tracks_of(out: Location, commit: TrackCommit) -> pa.Table:
    """The ``tracks`` table a commit wrote, as written."""
    written = out.child(commit.files[0])
    return pq.read_table(written.path, filesystem=written.fs)
