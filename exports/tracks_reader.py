"""Read the committed tracks of a job output (``yolonas-batch track``) as ``VideoTracks`` values, one video at a
time, for the formats of tracks.

A video's tracks are those of its newest committed marker (``common.committed_tracks``: ``track`` removes older
versions, but a run killed in between may leave two). Each video's tracks file is small (one row per
box of a track) and read whole; memory holds one video. ``--classes`` applies to tracks as to boxes;
``--min-score`` drops tracks whose mean score is below it (dropping single boxes would cut tracks into pieces).
"""

from __future__ import annotations

import io
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from common.committed_files import committed_files
from common.committed_tracks import newest_track_commits
from common.errors import UsageError
from common.storage import location
from exports.naming import image_root, relative_name
from exports.records import Categories, Track, VideoTracks, model_version
from exports.select import ClassMap, class_map
from schemas.export_config import ExportConfig
from schemas.manifest import RunManifest, TrackCommit
from workers.errors import one_line

_NOT_FOR_TRACKS = {"run_id": "--run-id", "split": "--split", "include_errors": "--errors"}
"""Export options of frames with no meaning for tracks (``track --run-id`` chooses the detections tracked)."""


class TracksReader:
    """The tracked videos of one output, sorted by URI; iterate once."""

    def __init__(self, config: ExportConfig) -> None:
        for option, flag in _NOT_FOR_TRACKS.items():
            if getattr(config, option):
                raise UsageError(f"{flag} does not apply to --format {config.format} (tracks are per video)")
        self.config = config
        self.out = location(config.output, config.storage_options)
        self.files = committed_files(self.out)
        self.commits = newest_track_commits(self.out)
        if not self.commits:
            raise UsageError(f"{self.out.uri} has no tracks: run 'yolonas-batch track {self.out.uri}' first")
        self.class_map = self._class_map()
        uris = sorted(self.commits)
        self.root = image_root(uris[0], uris[-1])
        self.tracks = 0
        """Tracks yielded so far."""

    @property
    def categories(self) -> Categories:
        return self.class_map.categories

    def __iter__(self) -> Iterator[VideoTracks]:
        for uri in sorted(self.commits):
            commit = self.commits[uri]
            tracks = self._tracks(commit)
            self.tracks += len(tracks)
            yield VideoTracks(
                source_uri=uri,
                name=relative_name(uri, self.root),
                fps=commit.fps,
                frame_count=commit.frame_count,
                width=commit.width,
                height=commit.height,
                frame_step=commit.frame_step,
                tracks=tracks,
            )

    def _class_map(self) -> ClassMap:
        """The classes of the output's newest run, as ``--classes`` maps them (tracks keep the model's ids)."""
        newest = self.files.manifests[max(self.files.manifests)]
        try:
            model = RunManifest.model_validate_json(newest.read_bytes()).model
        except (OSError, ValidationError) as exc:
            raise UsageError(f"cannot read run manifest {newest.uri}: {one_line(exc, keep='first')}") from None
        mapped = class_map(model.class_names, self.config.classes)
        return ClassMap(
            Categories(mapped.categories.names, model_version(model)),
            mapped.category_of,
        )

    def _tracks(self, commit: TrackCommit) -> tuple[Track, ...]:
        """The video's kept tracks, by track id, each with its boxes in frame order (as ``track`` wrote them)."""
        where = self.out.child(commit.files[0])
        try:
            table = pq.read_table(io.BytesIO(where.read_bytes()))
        except (OSError, pa.ArrowInvalid) as exc:
            raise UsageError(f"cannot read tracks {where.uri}: {one_line(exc, keep='first')}") from None
        if not table.num_rows:
            return ()
        ids = table.column("track_id").to_numpy()
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        ends = np.r_[starts[1:], len(ids)]
        classes = table.column("class_id").to_numpy()
        frames = table.column("frame_index").to_numpy()
        times = table.column("timestamp_s").to_numpy(zero_copy_only=False)
        scores = table.column("score").to_numpy()
        boxes = np.stack([table.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1)
        kept = []
        for start, end in zip(starts, ends):
            category = (
                self.class_map.category_of[classes[start]] if classes[start] < len(self.class_map.category_of) else None
            )
            if category is None or float(scores[start:end].mean()) < self.config.min_score:
                continue
            kept.append(
                Track(
                    track_id=int(ids[start]),
                    category=category,
                    frames=frames[start:end],
                    times=times[start:end],
                    scores=scores[start:end],
                    boxes=boxes[start:end],
                )
            )
        return tuple(kept)


def open_tracks(config: ExportConfig) -> TracksReader:
    """The tracks of ``config.output``; ``UsageError`` (one line) when it has none or cannot be read."""
    return TracksReader(config)
