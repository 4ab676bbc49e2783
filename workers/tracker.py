"""Follow objects over one video's frames: ByteTrack from Roboflow's ``trackers``, one tracker per class.

ByteTrack matches boxes to tracks by IoU against each track's Kalman prediction, high-scored boxes first, then
lower-scored ones to tracks left unmatched (an object partly hidden scores lower). It is class-agnostic, so each
class gets a tracker of its own and a track never changes class. Every frame goes to every class's tracker with
its timestamp: the motion model steps by the time since the last sampled frame, and a lost track ends after
``lost_after`` seconds, so a video sampled every third frame is tracked as one decoded in full.

Tracks keep the detections' own boxes and scores (never the filter's smoothed box): a track's box at a frame is
what the detector found there, which is what an annotator reviews. ``trackers`` names a track once it is seen on
two frames in a row and leaves the first of them unnamed; that first box is given to its track here, so a track
starts where the object was first seen. Track ids are renumbered at the end from 1, by first frame, so they are
the same for the same detections and settings whatever order the trackers named them in.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from schemas.track_config import TrackerSettings

REFERENCE_FPS = 30.0
"""``trackers`` counts its lost-track buffer in frames at 30 frames/s (then goes by time when given timestamps)."""
CONFIRM_FRAMES = 2
"""Frames in a row before a box sequence is a track (ByteTrack's own): one box alone is often a false positive."""


@dataclass(frozen=True)
class FrameBoxes:
    """One sampled frame's detections, the tracker's input."""

    frame_index: int
    timestamp_s: float
    class_ids: np.ndarray
    """int32 (n,)"""
    scores: np.ndarray
    """float32 (n,)"""
    boxes: np.ndarray
    """float32 (n, 4) x1 y1 x2 y2"""


@dataclass(frozen=True)
class TrackRows:
    """Every box of every track of a video, column by column, sorted by (track_id, frame_index)."""

    track_ids: np.ndarray
    frame_indices: np.ndarray
    timestamps: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)

    @property
    def tracks(self) -> int:
        return int(self.track_ids.max()) if len(self) else 0


@dataclass
class _Rows:
    """Columns of track boxes as they are found (frames in order, a track's first box when it is confirmed)."""

    tracks: list[int] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)

    def add(self, track: int, frame: FrameBoxes, row: int) -> None:
        self.tracks.append(track)
        self.frames.append(frame.frame_index)
        self.times.append(frame.timestamp_s)
        self.classes.append(int(frame.class_ids[row]))
        self.scores.append(float(frame.scores[row]))
        self.boxes.append(frame.boxes[row])


class _ClassTracker:
    """ByteTrack over one class's boxes, and the first box of each track not yet confirmed."""

    def __init__(self, settings: TrackerSettings, fps: float) -> None:
        self.tracker = ByteTrackTracker(
            lost_track_buffer=max(1, round(settings.lost_after * REFERENCE_FPS)),
            frame_rate=fps,
            track_activation_threshold=max(settings.new_track_score, settings.high_score),
            minimum_consecutive_frames=CONFIRM_FRAMES,
            minimum_iou_threshold=settings.min_iou,
            high_conf_det_threshold=settings.high_score,
        )
        self.first_boxes: dict[int, tuple[object, FrameBoxes, int]] = {}
        """``id()`` of a tracklet not yet confirmed -> (the tracklet, its first frame, the box's row there)."""

    def update(self, frame: FrameBoxes, rows: np.ndarray) -> list[tuple[int, FrameBoxes, int]]:
        """Track ``frame``'s boxes ``rows`` (those of this class); return (tracker's id, frame, row) of each box
        given to a confirmed track, a confirmed track's first box included."""
        # Held alive through the update: a track ended in it cannot lend its id() to a new one.
        held = list(self.tracker.tracks)
        before = {id(t) for t in held}
        detections = sv.Detections(
            xyxy=frame.boxes[rows].astype(np.float64),
            confidence=frame.scores[rows].astype(np.float64),
            data={"row": rows},
        )
        with warnings.catch_warnings():  # a repeated timestamp is a warning there; the frame is still tracked
            warnings.simplefilter("ignore", UserWarning)
            result = self.tracker.update(detections, timestamp=frame.timestamp_s)
        ids = result.tracker_id if result.tracker_id is not None else np.empty(0, int)
        returned = np.asarray(result.data.get("row", ()), dtype=np.int64)
        named = [(int(i), frame, int(row)) for i, row in zip(ids, returned) if i >= 0]
        self._remember_new(frame, ids, returned, before)
        for key, (tracklet, first, row) in list(self.first_boxes.items()):
            tracker_id = getattr(tracklet, "tracker_id", -1)
            if tracker_id >= 0:
                named.append((tracker_id, first, row))
                del self.first_boxes[key]
        alive = {id(t) for t in self.tracker.tracks}
        for key in [key for key in self.first_boxes if key not in alive]:
            del self.first_boxes[key]  # died unconfirmed: a false positive, never a track
        return named

    def _remember_new(self, frame: FrameBoxes, ids: np.ndarray, returned: np.ndarray, before: set[int]) -> None:
        """Pair each tracklet started by this update with the box it started from: the unnamed boxes that clear
        the activation score start tracklets in row order, and a new tracklet's state is its box (both checked, so
        a ``trackers`` release that changed either fails loudly instead of mislabelling)."""
        new = [t for t in self.tracker.tracks if id(t) not in before]
        if not new:
            return
        starts = sorted(
            int(row)
            for i, row in zip(ids, returned)
            if i < 0 and frame.scores[row] >= self.tracker.track_activation_threshold
        )
        if len(starts) != len(new):
            raise RuntimeError(f"frame {frame.frame_index}: {len(new)} new tracks from {len(starts)} boxes")
        for tracklet, row in zip(new, starts):
            if not np.allclose(tracklet.get_state_bbox(), frame.boxes[row], atol=1e-3):
                raise RuntimeError(f"frame {frame.frame_index}: a new track does not start from its box")
            self.first_boxes[id(tracklet)] = (tracklet, frame, row)


class VideoTracker:
    """Tracks of one video, fed its sampled frames in order (``update``), read once at the end (``finish``)."""

    def __init__(self, settings: TrackerSettings, fps: float) -> None:
        self.settings = settings
        self.fps = fps
        self._classes: dict[int, _ClassTracker] = {}
        self._names: dict[tuple[int, int], int] = {}
        """(class id, that class tracker's id) -> a provisional track number, renumbered by ``finish``."""
        self._rows = _Rows()

    def update(self, frame: FrameBoxes) -> None:
        """Track one sampled frame (frames in increasing time; a frame with no box still ages the tracks)."""
        for class_id in np.unique(frame.class_ids):
            if int(class_id) not in self._classes:
                self._classes[int(class_id)] = _ClassTracker(self.settings, self.fps)
        for class_id, tracker in self._classes.items():
            rows = np.flatnonzero(frame.class_ids == class_id)
            for tracker_id, seen, row in tracker.update(frame, rows):
                track = self._names.setdefault((class_id, tracker_id), len(self._names))
                self._rows.add(track, seen, row)

    def finish(self) -> TrackRows:
        """Every track's boxes, ids from 1 in order of first frame (then class, then first box)."""
        r = self._rows
        provisional = np.asarray(r.tracks, np.int64)
        frames = np.asarray(r.frames, np.int64)
        boxes = np.asarray(r.boxes, np.float32).reshape(-1, 4)
        classes = np.asarray(r.classes, np.int32)
        order = np.lexsort((frames, provisional))
        first = order[np.diff(provisional[order], prepend=-1) != 0]  # each track's first box
        ranking = np.lexsort((boxes[first, 1], boxes[first, 0], classes[first], frames[first]))
        renumbered = np.empty(len(first), np.int32)
        renumbered[provisional[first][ranking]] = np.arange(1, len(first) + 1, dtype=np.int32)
        track_ids = renumbered[provisional]
        order = np.lexsort((frames, track_ids))
        return TrackRows(
            track_ids=track_ids[order],
            frame_indices=frames[order],
            timestamps=np.asarray(r.times, np.float64)[order],
            class_ids=classes[order],
            scores=np.asarray(r.scores, np.float32)[order],
            boxes=boxes[order],
        )
