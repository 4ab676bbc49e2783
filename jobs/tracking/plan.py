"""Which videos ``track`` tracks, from which committed files, under which key.

A video's detections are the committed ``frames`` and ``detections`` part files that hold its rows (those of
``--run-id`` only, or of every run: the newest row per frame, as ``export`` chooses). Committed part files never
change, so the files read, the tracker's settings and its release decide a video's tracks, and they make its key:
the first half a hash of the video's URI (its tracks of every version share it, so older ones are found by name),
the second a hash of the rest. Tracking again after nothing changed finds every key committed; after a new
``detect`` run committed more frames of a video, or with other settings, the key changes and it is redone.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata

import duckdb

from common.committed_files import committed_files, connect, relative, sql_literal
from common.errors import UsageError
from common.storage import Location
from schemas import layout
from schemas.media import VIDEO_EXTENSIONS
from schemas.track_config import TrackerSettings

MEMORY_LIMIT = "256MB"
_IS_VIDEO = "regexp_matches(source_uri, {})".format(
    sql_literal(r"(?i)\.(" + "|".join(sorted(e.lstrip(".") for e in VIDEO_EXTENSIONS)) + ")$")
)


class NoVideos(UsageError):
    """The rows to track hold no video frame."""


@dataclass(frozen=True)
class VideoWork:
    """One video to track: where its committed rows are, what is known of it, and its key."""

    source_uri: str
    partition: str
    """The partition its tracks are written under: that of its newest committed frames."""
    inputs: tuple[str, ...]
    """Its committed ``frames`` part files, relative to the output, sorted; the ``detections`` files are named
    alike."""
    frames: int
    """Rows of it in those files (each frame once per run that answered it): for progress only."""
    fps: float | None
    video_frames: int | None
    """From the plan of the newest run that planned it (None when unknown)."""
    key: str

    @property
    def video_id(self) -> str:
        return layout.track_key_video(self.key)


def video_id(source_uri: str) -> str:
    return hashlib.sha256(source_uri.encode()).hexdigest()[: layout.TRACK_KEY_HALF]


def track_key(source_uri: str, settings: TrackerSettings, inputs: tuple[str, ...]) -> str:
    """The video's id, then a hash of what its tracks depend on: the settings, the tracker library's release (an
    upgrade may track differently) and the committed files read."""
    depends = [settings.fingerprint(), metadata.version("trackers"), list(inputs)]
    version = hashlib.sha256(json.dumps(depends).encode()).hexdigest()
    return video_id(source_uri) + version[: layout.TRACK_KEY_HALF]


def plan_videos(out: Location, run_id: str | None, settings: TrackerSettings) -> list[VideoWork]:
    """The videos of ``out``'s committed rows, sorted by URI. ``UsageError`` (one line) for what is not a job
    output, an unknown run, or rows with no video."""
    files = committed_files(out, run_id)
    frames_files = files.of(layout.FRAMES, run_id)
    what = f"run {run_id}" if run_id else out.uri
    if not frames_files:
        raise UsageError(f"{what} has no committed frames (no shard of it has finished)")
    scratch = tempfile.mkdtemp(prefix="yolonas-track-plan-")
    try:
        db = connect(scratch, MEMORY_LIMIT, False, out)
        try:
            rows = db.execute(
                f"""select source_uri, filename, count(*)
                    from read_parquet($files, filename = true, hive_partitioning = false)
                    where {_IS_VIDEO} group by all order by 1, 2""",
                {"files": frames_files},
            ).fetchall()
            if not rows:
                raise NoVideos(f"{what} has no committed video frames to track (only images)")
            probes = _probes(db, list(files.plans.values()))
        finally:
            db.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _works(out, rows, probes, settings)


def _probes(db: duckdb.DuckDBPyConnection, plans: list[str]) -> dict[str, tuple[float | None, int | None]]:
    """Each video's rate and frame count from the newest plan that has it (file names sort by run id)."""
    if not plans:
        return {}
    rows = db.execute(
        f"""select source_uri, arg_max(fps, filename), arg_max(video_frames, filename)
            from read_parquet($plans, filename = true) where kind = 'video' and {_IS_VIDEO} group by 1""",
        {"plans": plans},
    ).fetchall()
    return {uri: (fps, frames) for uri, fps, frames in rows}


def _works(
    out: Location,
    rows: list[tuple[str, str, int]],
    probes: dict[str, tuple[float | None, int | None]],
    settings: TrackerSettings,
) -> list[VideoWork]:
    by_video: dict[str, list[tuple[str, int]]] = {}
    for uri, filename, count in rows:
        by_video.setdefault(uri, []).append((relative(out, filename), count))
    works = []
    for uri, found in by_video.items():
        inputs = tuple(sorted(name for name, _ in found))
        newest = max(inputs, key=lambda name: (layout.parse_part_file(name) or ("", ""))[0])
        fps, video_frames = probes.get(uri, (None, None))
        works.append(
            VideoWork(
                source_uri=uri,
                partition=posixpath.dirname(posixpath.relpath(newest, layout.FRAMES)),
                inputs=inputs,
                frames=sum(count for _, count in found),
                fps=fps,
                video_frames=video_frames,
                key=track_key(uri, settings, inputs),
            )
        )
    return works
