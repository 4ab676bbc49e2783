"""Track one video from its committed detections to its committed tracks: what each of ``track``'s tasks runs.

Free of Ray, so it runs the same in a task, in a test, or in a loop."""

from __future__ import annotations

from common.storage import Location
from jobs.records.fence import Fence
from jobs.tracking.committer import TrackCommitter
from jobs.tracking.plan import VideoWork
from jobs.tracking.video_rows import VideoRows
from schemas.manifest import TrackCommit
from schemas.track_config import TrackerSettings
from workers.tracker import VideoTracker

FALLBACK_FPS = 30.0
"""The rate assumed for a video whose run saved no plan with its rate (only for the motion model's step)."""


def track_video(out: Location, work: VideoWork, settings: TrackerSettings, fence: Fence | None = None) -> TrackCommit:
    fps = work.fps or FALLBACK_FPS
    rows = VideoRows(out, work, fps)
    tracker = VideoTracker(settings, fps)
    for frame in rows:
        tracker.update(frame)
    return TrackCommitter(out, fence).commit(work, tracker.finish(), rows.stats, settings, fps)
