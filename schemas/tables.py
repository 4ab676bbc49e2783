"""Arrow schemas of the job's tables (output, stage results, listing, plan), declared once, never inferred.

``frames`` has one row per image or sampled video frame, ``ok`` or ``error``; ``detections`` one row per box.
Both are hive-partitioned by ``run_date`` and ``source`` (``run_date=YYYY-MM-DD/source=<slug>``, made by
``jobs.planning.plan``): partition values live in the folder names only, as the hive convention wants, so readers
add them back as columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_KEY_FIELDS = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("source_uri", pa.string(), nullable=False),
    pa.field("frame_index", pa.int64(), nullable=False),
    pa.field("timestamp_s", pa.float64()),
]

FRAMES_SCHEMA = pa.schema(
    _KEY_FIELDS
    + [
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("num_detections", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("shard_id", pa.string(), nullable=False),
    ]
)

_CLASS_ID = pa.field("class_id", pa.int32(), nullable=False)
_SCORE_AND_BOX = [pa.field(name, pa.float32(), nullable=False) for name in ("score", "x1", "y1", "x2", "y2")]

DETECTIONS_SCHEMA = pa.schema(
    _KEY_FIELDS + [_CLASS_ID, pa.field("class_name", pa.string(), nullable=False)] + _SCORE_AND_BOX
)

_TRACK_KEY = [pa.field("source_uri", pa.string(), nullable=False), pa.field("track_id", pa.int32(), nullable=False)]
_TRACK_CLASS = [_CLASS_ID, pa.field("class_name", pa.string(), nullable=False)]

TRACKS_SCHEMA = pa.schema(
    [_TRACK_KEY[0], pa.field("frame_index", pa.int64(), nullable=False), pa.field("timestamp_s", pa.float64())]
    + [_TRACK_KEY[1]]
    + _TRACK_CLASS
    + _SCORE_AND_BOX
)
"""``tracks``: one row per box of a track (``yolonas-batch track``), the detection's own box and score, sorted by
track and frame. ``track_id`` counts from 1 within a video, in order of each track's first frame."""

TRACK_SUMMARIES_SCHEMA = pa.schema(
    _TRACK_KEY
    + _TRACK_CLASS
    + [
        pa.field("first_frame", pa.int64(), nullable=False),
        pa.field("last_frame", pa.int64(), nullable=False),
        pa.field("first_timestamp_s", pa.float64()),
        pa.field("last_timestamp_s", pa.float64()),
        pa.field("length", pa.int32(), nullable=False),
        pa.field("mean_score", pa.float32(), nullable=False),
    ]
)
"""``track_summaries``: one row per track: its first and last frame, how many boxes it has, their mean score."""

BOX_TYPE = pa.struct([_CLASS_ID] + _SCORE_AND_BOX)
"""One detected box, as the model stage nests it per frame."""

RESULTS_SCHEMA = pa.schema(
    [
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("item", pa.int64(), nullable=False),
        pa.field("item_rows", pa.int32(), nullable=False),
        pa.field("frame_index", pa.int64(), nullable=False),
        pa.field("timestamp_s", pa.float64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("boxes", pa.list_(BOX_TYPE), nullable=False),
    ]
)
"""What the model stage hands the write stage, and the write stage stages: one row per frame, its boxes nested.

``partition`` is the relative folder (``run_date=…/source=…``) the frame's rows are written under; ``item`` the
plan row (work item) the frame came from, and ``item_rows``, on an item's last row only, how many rows it gave.
"""

RECEIPT_SCHEMA = pa.schema(
    [
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("file", pa.string(), nullable=False),
        pa.field("keys", pa.list_(pa.int64()), nullable=False),
        pa.field("none_keys", pa.list_(pa.int64()), nullable=False),
        pa.field("error_keys", pa.list_(pa.int64()), nullable=False),
        pa.field("last_items", pa.list_(pa.int64()), nullable=False),
        pa.field("last_rows", pa.list_(pa.int32()), nullable=False),
    ]
)
"""What the write stage hands the driver for each staged file (``jobs.pipeline.write_stage``) instead of its rows: the
file's name, the keys of its rows (``row_keys``; those of placeholder and error rows again
apart, for counting) and, for the items whose last row it holds, how many rows each gave. Enough for the driver
to tell when a shard is complete and to drop a file whose rows it already has, without seeing a box."""

FRAME_BITS = 32
"""``row_keys`` packs (item, frame index) into one int64: frame indices stay below 2**32, items below 2**31."""


def row_keys(results: pa.Table) -> np.ndarray:
    """One int64 per result row naming its frame: its work item and frame index (unique within a run)."""
    return frame_keys(results.column("item").to_numpy(), results.column("frame_index").to_numpy())


def frame_keys(items: np.ndarray, frame_indices: np.ndarray) -> np.ndarray:
    """One int64 per (work item, frame index) pair."""
    return (items.astype(np.int64) << FRAME_BITS) | frame_indices.astype(np.int64)


STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_NONE = "none"
"""A placeholder for a work item that gave no frame (a video range past the real end); never written out."""


def error_kind(message: str | None) -> str:
    """The stage of an ``error`` column's message, ``stage: cause`` (``decode: …`` → ``decode``), for counting by
    kind."""
    return (message or "unknown").split(":", 1)[0].strip() or "unknown"


LISTING_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("version", pa.string()),
    ]
)
"""The listed inputs (in memory, never written). ``version``: what changes when the file's content does (ETag
on S3, mtime in ns locally); with ``size`` it tells ``--incremental`` which inputs are new or changed. Null for
entries of a manifest (not looked up)."""

PLAN_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("version", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("item", pa.int64(), nullable=False),
        pa.field("frame_start", pa.int64(), nullable=False),
        pa.field("frame_stop", pa.int64()),
        pa.field("fps", pa.float64()),
        pa.field("video_frames", pa.int64()),
        pa.field("expected_frames", pa.int64(), nullable=False),
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ]
)
"""The run's plan, saved as ``_runs/<run_id>/plan.parquet``, one row per work item. ``frame_start`` and
``frame_stop``: the decoded-frame range of a video item (0/null for images and whole videos); ``fps`` and
``video_frames`` (the container's exact frame count, when it has one) from the probe."""
