"""Commit protocol of the tracks: a video's two table files, then its marker; a key with a marker is done.

``tracks/<partition>/part-<key>.parquet`` and ``track_summaries/<partition>/part-<key>.parquet`` are written
(each atomically), then ``_runs/_tracks/<key>.json``, after the run's lease is checked. A video tracked again
under the same key (a retried task, a resumed run) rewrites its own files; under a new key (new detections,
other settings), the older key's marker and files are removed once the new one is committed. What a killed run
left (files without a marker, an older version kept beside a newer one) is removed by the next run at its start.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

import pyarrow as pa

from common.parquet import parquet_bytes
from common.storage import Location
from jobs.records.fence import Fence, deadline_of
from jobs.tracking.plan import VideoWork
from jobs.tracking.video_rows import VideoStats
from schemas import layout
from schemas.manifest import TrackCommit
from schemas.tables import TRACK_SUMMARIES_SCHEMA, TRACKS_SCHEMA
from schemas.track_config import TrackerSettings
from workers.tracker import TrackRows


class TrackCommitter:
    """Writes videos' tracks under ``out`` and tells which keys are committed."""

    def __init__(self, out: Location, fence: Fence | None = None) -> None:
        """``fence``: the run's hold on the output's lease, checked before each marker is written; its deadline
        bounds each write."""
        self.out = out
        self.fence = fence
        self.deadline = deadline_of(fence)

    def marker(self, key: str) -> Location:
        return self.out.child(layout.track_marker(key))

    def committed_keys(self) -> set[str]:
        """Keys with a marker, from one fresh listing (no marker is read)."""
        names = self.out.child(layout.TRACK_MARKERS).files()
        return {key for key in map(layout.parse_track_marker, names) if key is not None}

    def commit(
        self, work: VideoWork, rows: TrackRows, stats: VideoStats, settings: TrackerSettings, fps: float
    ) -> TrackCommit:
        """Write a video's tracks and summaries, then its marker, which says what the formats of tracks need to
        know of the video (rate, size, frame count and step)."""
        tracks = tracks_table(work.source_uri, rows, stats.class_names)
        files = []
        for table_name, table in ((layout.TRACKS, tracks), (layout.TRACK_SUMMARIES, summaries_table(tracks))):
            name = layout.track_part_file(table_name, work.partition, work.key)
            self.out.child(name).write_bytes_atomic(parquet_bytes(table), deadline=self.deadline)
            files.append(name)
        commit = TrackCommit(
            key=work.key,
            source_uri=work.source_uri,
            partition=work.partition,
            settings=settings.model_dump(),
            inputs=list(work.inputs),
            fps=fps,
            frame_count=max(work.video_frames or 0, stats.last_frame + 1),
            width=stats.width,
            height=stats.height,
            frame_step=stats.frame_step,
            frames=stats.frames,
            error_frames=stats.error_frames,
            detections=stats.detections,
            tracks=rows.tracks,
            boxes=len(rows),
            files=files,
            committed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if self.fence is not None:
            self.fence.check()
        self.marker(work.key).write_bytes_atomic(commit.model_dump_json(indent=1).encode(), deadline=self.deadline)
        return commit

    def clean(self, current: dict[str, str]) -> int:
        """Remove what no reader should see: part files whose key has no marker (a killed attempt's), partial
        ``.tmp`` files, and every other version of a video whose ``current`` key (video id -> key) is committed.
        Run under the output's lease. Returns how many files went."""
        committed = self.committed_keys()
        versions: dict[str, list[str]] = defaultdict(list)
        for key in committed:
            versions[layout.track_key_video(key)].append(key)
        superseded = {
            key
            for video, keys in versions.items()
            if current.get(video) in committed
            for key in keys
            if key != current[video]
        }
        doomed = [self.marker(key).path for key in superseded]
        for table in layout.TRACK_TABLES:
            for path in self.out.child(table).files():
                part = layout.parse_track_part_file(path)
                if path.endswith(layout.PARTIAL_SUFFIX) or (
                    part is not None and (part not in committed or part in superseded)
                ):
                    doomed.append(path)
        for path in doomed:  # markers first: a version is gone for readers before its files are
            self.out.fs.rm_file(path)
        return len(doomed)


def tracks_table(source_uri: str, rows: TrackRows, class_names: dict[int, str]) -> pa.Table:
    n = len(rows)
    names = pa.array([class_names.get(int(c), str(int(c))) for c in rows.class_ids], pa.string())
    return pa.table(
        {
            "source_uri": pa.array([source_uri] * n, pa.string()),
            "frame_index": rows.frame_indices,
            "timestamp_s": rows.timestamps,
            "track_id": rows.track_ids,
            "class_id": rows.class_ids,
            "class_name": names,
            "score": rows.scores,
            **{name: rows.boxes[:, i] for i, name in enumerate(("x1", "y1", "x2", "y2"))},  # (n, 4), n may be 0
        },
    ).cast(TRACKS_SCHEMA)


def summaries_table(tracks: pa.Table) -> pa.Table:
    """One row per track of a video's ``tracks`` table."""
    grouped = tracks.group_by(["source_uri", "track_id", "class_id", "class_name"], use_threads=False).aggregate(
        [
            ("frame_index", "min"),
            ("frame_index", "max"),
            ("timestamp_s", "min"),
            ("timestamp_s", "max"),
            ("frame_index", "count"),
            ("score", "mean"),
        ]
    )
    summary = pa.table(
        {
            "source_uri": grouped.column("source_uri"),
            "track_id": grouped.column("track_id"),
            "class_id": grouped.column("class_id"),
            "class_name": grouped.column("class_name"),
            "first_frame": grouped.column("frame_index_min"),
            "last_frame": grouped.column("frame_index_max"),
            "first_timestamp_s": grouped.column("timestamp_s_min"),
            "last_timestamp_s": grouped.column("timestamp_s_max"),
            "length": grouped.column("frame_index_count"),
            "mean_score": grouped.column("score_mean"),
        }
    )
    return summary.sort_by("track_id").cast(TRACK_SUMMARIES_SCHEMA)
