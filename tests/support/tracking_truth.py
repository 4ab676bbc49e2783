"""Synthetic ground truth for the tracker: objects on known straight paths, the detections a detector would give of
them, and the tracks of ``track`` scored against the truth with ``motmetrics`` (IDF1, MOTA, identity switches).

A detector's faults are made on purpose, from a seeded generator so every run sees the same frames: boxes jitter
by a few pixels, about one box in ten is missed, one object is hidden for half a second (and scores low just
before and after, as a partly hidden object does, so ByteTrack's low-score stage has work), and random false
positives appear about once in three frames. The truth is each object's exact box while it is visible; the
tracks are judged on the frames that were sampled (``stride``), the only ones the tracker saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import motmetrics as mm
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.storage import Location
from jobs.tracking.plan import plan_videos
from jobs.tracking.track_video import track_video
from schemas.manifest import TrackCommit
from schemas.track_config import TrackerSettings
from tests.support.outputs import CLASS_NAMES, Frame, commit_run, run_id

WIDTH, HEIGHT = 1280, 720
VIDEO = "file:///data/street.mp4"
MATCH_IOU = 0.5
"""A track's box counts as finding an object at this IoU, the usual MOT threshold."""
JITTER_PX = 2.0
MISS_RATE = 0.1
FALSE_POSITIVES_PER_FRAME = 0.3
FALSE_POSITIVE_SCORES = (0.3, 0.7)
PARTLY_HIDDEN_SCORES = (0.3, 0.5)
PARTLY_HIDDEN_FRAMES = 4
"""Frames either side of an occlusion where the object is partly hidden: seen, but scored below ``high_score``."""
MIN_VISIBLE = 0.5
"""Share of an object's box that must lie in the frame for it to be visible (and in the truth)."""

Box = tuple[float, float, float, float]
Detected = tuple[str, float, float, float, float, float]
"""(class name, score, x1, y1, x2, y2): a box of ``outputs.Frame``."""


@dataclass(frozen=True)
class ObjectPath:
    """One object moving in a straight line at constant speed, from frame ``first`` to ``last``."""

    gt_id: int
    class_name: str
    first: int
    last: int
    center: tuple[float, float]
    """At frame ``first``; it may start off-screen and enter."""
    velocity: tuple[float, float]
    """Pixels per frame."""
    size: tuple[float, float]
    scores: tuple[float, float]
    """The range its detections' scores are drawn from."""
    hidden: range = range(0)
    """Frames it is fully occluded."""

    def box(self, frame: int) -> Box | None:
        """Its box at ``frame`` clipped to the image, None where it is absent, hidden or mostly outside."""
        if not self.first <= frame <= self.last or frame in self.hidden:
            return None
        t = frame - self.first
        cx, cy = self.center[0] + self.velocity[0] * t, self.center[1] + self.velocity[1] * t
        w, h = self.size
        x1, y1, x2, y2 = max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, WIDTH), min(cy + h / 2, HEIGHT)
        if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) < MIN_VISIBLE * w * h:
            return None
        return (x1, y1, x2, y2)

    def partly_hidden(self, frame: int) -> bool:
        if not self.hidden:
            return False
        return self.hidden.start - PARTLY_HIDDEN_FRAMES <= frame < self.hidden.stop + PARTLY_HIDDEN_FRAMES


@dataclass(frozen=True)
class TruthBox:
    gt_id: int
    class_name: str
    box: Box


@dataclass(frozen=True)
class Synthetic:
    """A video's truth on its sampled frames and the detections of those frames, ready for ``commit_run``."""

    truth: dict[int, list[TruthBox]]
    """Sampled frame index -> the objects visible there."""
    frames: list[Frame]
    """One per sampled frame, in order, frames without a box included (they still age the tracks)."""
    paths: tuple[ObjectPath, ...]


def street(frames: int = 250) -> tuple[ObjectPath, ...]:
    """A 10 s street scene (at 25 frames/s), 1280x720: two people whose paths cross mid-video (same class, so only
    motion tells them apart), a third crossing later, one standing still with scores near the track-start score,
    a fast car that leaves mid-video, a truck that enters mid-video, a slow car crossing the fast car's lane, and a
    dog hidden for about half a second. Person 1 is seen from the first frame to the last."""
    end = frames - 1
    return (
        ObjectPath(1, "person", 0, end, (150, 400), (2.0, 0.2), (60, 150), (0.7, 0.95)),
        ObjectPath(2, "person", 0, end, (1000, 380), (-3.6, 0.1), (55, 140), (0.6, 0.9)),
        ObjectPath(3, "car", 0, end, (100, 560), (9.0, 0.0), (190, 95), (0.75, 0.95)),
        ObjectPath(4, "truck", 110, end, (1380, 250), (-5.0, 0.0), (200, 130), (0.65, 0.9)),
        ObjectPath(5, "dog", 0, end, (200, 150), (3.5, 1.2), (70, 45), (0.55, 0.8), hidden=range(160, 173)),
        ObjectPath(6, "person", 0, end, (1150, 330), (-0.2, 0.0), (45, 110), (0.5, 0.65)),
        ObjectPath(7, "car", 0, end, (1100, 420), (-3.0, 0.6), (150, 80), (0.6, 0.9)),
        ObjectPath(8, "person", 20, end, (700, 0), (0.0, 2.5), (50, 125), (0.6, 0.95)),
    )


def crowd(objects: int, frames: int, seed: int = 0) -> tuple[ObjectPath, ...]:
    """About ``objects`` objects at a time over ``frames`` frames: each lives 100–300 frames on a random straight
    path, and they start at random times, so some enter and leave throughout (for speed, at any size)."""
    rng = np.random.default_rng(seed)
    mean_life = 200
    paths = []
    for gt_id in range(1, objects * (frames + mean_life) // mean_life + 1):
        life = int(rng.integers(100, 301))
        first = int(rng.integers(-life, frames))
        size = (float(rng.uniform(40, 200)), float(rng.uniform(40, 200)))
        center = (float(rng.uniform(0, WIDTH)), float(rng.uniform(0, HEIGHT)))
        velocity = (float(rng.uniform(-4, 4)), float(rng.uniform(-2, 2)))
        low = float(rng.uniform(0.5, 0.8))
        name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
        paths.append(ObjectPath(gt_id, name, first, first + life, center, velocity, size, (low, low + 0.15)))
    return tuple(paths)


def synthetic(paths: tuple[ObjectPath, ...], frames: int, stride: int = 1, seed: int = 0) -> Synthetic:
    """The truth and the detections of ``paths`` on every ``stride``-th frame of ``frames`` (index % stride == 0;
    timestamps stay index / 25). The detector's faults are drawn for every frame, sampled or not, so a frame's
    detections do not depend on the stride."""
    rng = np.random.default_rng(seed)
    truth: dict[int, list[TruthBox]] = {}
    detected: list[Frame] = []
    for index in range(frames):
        visible = [(p, box) for p in paths if (box := p.box(index)) is not None]
        found = [_detection(p, box, index, rng) for p, box in visible]
        boxes = [b for b in found if b is not None] + _false_positives(rng)
        if index % stride == 0:
            truth[index] = [TruthBox(p.gt_id, p.class_name, box) for p, box in visible]
            detected.append(Frame(VIDEO, boxes, index=index, width=WIDTH, height=HEIGHT))
    return Synthetic(truth, detected, paths)


def _detection(path: ObjectPath, box: Box, frame: int, rng: np.random.Generator) -> Detected | None:
    """The detector's box of one visible object, or None when it misses it (always drawn, so the generator's
    sequence does not depend on which boxes were missed)."""
    missed = rng.random() < MISS_RATE
    jitter = rng.normal(0.0, JITTER_PX, 4)
    score = rng.uniform(*(PARTLY_HIDDEN_SCORES if path.partly_hidden(frame) else path.scores))
    if missed:
        return None
    x1, y1, x2, y2 = np.clip(np.asarray(box) + jitter, 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    return _detected(path.class_name, score, x1, y1, x2, y2)


def _false_positives(rng: np.random.Generator) -> list[Detected]:
    boxes = []
    for _ in range(rng.poisson(FALSE_POSITIVES_PER_FRAME)):
        w, h = rng.uniform(40, 200, 2)
        x1, y1 = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
        score = rng.uniform(*FALSE_POSITIVE_SCORES)
        boxes.append(_detected(name, score, x1, y1, x1 + w, y1 + h))
    return boxes


def _detected(name: str, score: float, x1: float, y1: float, x2: float, y2: float) -> Detected:
    """Rounded as a detector's output is printed: a score to 3 digits, pixels to 2."""
    return (
        name,
        round(float(score), 3),
        round(float(x1), 2),
        round(float(y1), 2),
        round(float(x2), 2),
        round(float(y2), 2),
    )


# --- tracking a committed output ----------------------------------------------------------------------------------


def commit_shards(out: Location, frames: list[Frame], shards: int, day: int = 3) -> None:
    """Commit ``frames`` as one run whose video was split into ``shards`` consecutive frame ranges (work items),
    each its own shard, as the job splits a long video."""
    bounds = np.linspace(0, len(frames), shards + 1).round().astype(int)
    commit_run(out, run_id(day), {f"{s:05d}": frames[bounds[s] : bounds[s + 1]] for s in range(shards)})


def track_output(out: Location, settings: TrackerSettings | None = None) -> tuple[TrackCommit, pa.Table]:
    """Plan and track the output's one video as ``track`` does (no Ray), and its tracks table as written."""
    settings = settings or TrackerSettings()
    (work,) = plan_videos(out, None, settings)
    commit = track_video(out, work, settings)
    written = out.child(commit.files[0])
    return commit, pq.read_table(written.path, filesystem=written.fs)


# --- scoring ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    idf1: float
    mota: float
    switches: int
    fragmentations: int
    tracks: int
    objects: int
    ids_per_object: dict[int, list[int]]
    """Each object's track ids in the order it was matched to them: one id is one unbroken identity."""

    @property
    def fragmented(self) -> dict[int, list[int]]:
        return {gt: ids for gt, ids in self.ids_per_object.items() if len(ids) > 1}


def score(truth: dict[int, list[TruthBox]], tracks: pa.Table) -> Scores:
    """IDF1, MOTA, identity switches and fragmentations of ``tracks`` against ``truth``, on the truth's frames
    only; a track box matches an object of the same class at IoU >= ``MATCH_IOU``."""
    hyps = _boxes_by_frame(tracks)
    acc = mm.MOTAccumulator(auto_id=False)
    for frame, objects in truth.items():
        found = hyps.get(frame, [])
        distances = _distances([(o.class_name, o.box) for o in objects], [(c, b) for _, c, b in found])
        acc.update([o.gt_id for o in objects], [t for t, _, _ in found], distances, frameid=frame)
    names = ["idf1", "mota", "num_switches", "num_fragmentations", "num_unique_objects"]
    summary = mm.metrics.create().compute(acc, metrics=names).iloc[0]
    return Scores(
        idf1=float(summary["idf1"]),
        mota=float(summary["mota"]),
        switches=int(summary["num_switches"]),
        fragmentations=int(summary["num_fragmentations"]),
        tracks=len(set(tracks.column("track_id").to_pylist())),
        objects=int(summary["num_unique_objects"]),
        ids_per_object=_ids_per_object(acc),
    )


def _boxes_by_frame(tracks: pa.Table) -> dict[int, list[tuple[int, str, Box]]]:
    by_frame: dict[int, list[tuple[int, str, Box]]] = {}
    for row in tracks.select(["frame_index", "track_id", "class_name", "x1", "y1", "x2", "y2"]).to_pylist():
        box = (row["x1"], row["y1"], row["x2"], row["y2"])
        by_frame.setdefault(row["frame_index"], []).append((row["track_id"], row["class_name"], box))
    return by_frame


def _distances(objects: list[tuple[str, Box]], found: list[tuple[str, Box]]) -> np.ndarray:
    """1 - IoU for each (object, track box) pair; NaN (never matched) below ``MATCH_IOU`` or across classes.
    Computed here: ``motmetrics.distances.iou_matrix`` calls ``np.asfarray``, gone in numpy 2."""
    if not objects or not found:
        return np.empty((len(objects), len(found)))
    a = np.asarray([b for _, b in objects], np.float64)[:, None, :]
    b = np.asarray([b for _, b in found], np.float64)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    iou = inter / (area - inter)
    same_class = np.asarray([[c == d for d, _ in found] for c, _ in objects])
    return np.where((iou >= MATCH_IOU) & same_class, 1 - iou, np.nan)


def _ids_per_object(acc: mm.MOTAccumulator) -> dict[int, list[int]]:
    events = acc.mot_events
    matched = events[events["Type"].isin(["MATCH", "SWITCH"])]
    ids: dict[int, list[int]] = {}
    for gt_id, track_id in zip(matched["OId"], matched["HId"]):
        seen = ids.setdefault(int(gt_id), [])
        if not seen or seen[-1] != int(track_id):
            seen.append(int(track_id))
    return ids
