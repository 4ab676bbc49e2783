"""Where to publish, and what the tables must hold: the rows ``export``'s readers choose by default (of frames and
boxes, of tracks), and the tables' rows read back with pyiceberg and DuckDB. The outputs are made without a model
(``tests/support/two_runs.py``, ``tests/support/outputs.py``: the job's own committer; tracks by
``tests/support/tracked_outputs.py``, as ``track``'s tasks write them)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog import Catalog

from common.storage import Location, location
from exports.committed import DETECTIONS, FRAMES, CommittedRows
from exports.tracks_reader import TracksReader
from schemas.export_config import ExportConfig
from tables import published
from tables.catalog import open_catalog
from tables.shard_tables import ADDED_SHARDS

FRAME_KEYS = "run_id, source_uri, frame_index, status, num_detections, width, height"
BOX_KEYS = "run_id, source_uri, frame_index, class_name, score, x1, y1, x2, y2"
TRACK_KEYS = "source_uri, track_id, frame_index, timestamp_s, class_id, score, x1, y1, x2, y2"
SUMMARY_KEYS = (
    "source_uri, track_id, class_id, class_name, first_frame, last_frame, first_timestamp_s, last_timestamp_s, "
    "length, mean_score"
)


@pytest.fixture
def out(tmp_path: Path) -> Location:
    return location(str(tmp_path / "out"))


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    """An embedded SQLite catalog, its warehouse beside the output."""
    return open_catalog(f"sqlite:///{tmp_path / 'catalog.db'}", (tmp_path / "warehouse").as_uri())


def exported(out: Location) -> tuple[list[tuple], list[tuple]]:
    """The frames and boxes ``export`` reads by default (the newest row per frame), sorted."""
    with CommittedRows(out) as rows:
        return (
            rows.rows(f"select {FRAME_KEYS} from {FRAMES} order by all"),
            rows.rows(f"select {BOX_KEYS} from {DETECTIONS} order by all"),
        )


def table_rows(catalog: Catalog, namespace: str) -> tuple[list[tuple], list[tuple]]:
    """The same, read from the published tables: pyiceberg's scan, then DuckDB over its Arrow."""
    db = duckdb.connect()
    for table in ("frames", "detections"):
        db.register(table, scanned(catalog, namespace, table))
    return (
        db.sql(f"select {FRAME_KEYS} from frames order by all").fetchall(),
        db.sql(f"select {BOX_KEYS} from detections order by all").fetchall(),
    )


def scanned(catalog: Catalog, namespace: str, table: str) -> pa.Table:
    return catalog.load_table(f"{namespace}.{table}").scan().to_arrow()


def exported_tracks(out: Location) -> tuple[list[tuple], list[tuple]]:
    """The boxes of tracks ``export`` reads by default (``TracksReader``: of each video its newest version, every
    track; the category is the class id without ``--classes``), and the summaries of the same versions, sorted."""
    reader = TracksReader(ExportConfig(output=out.uri, format="mot", to="/unused"))
    boxes = [
        (video.source_uri, track.track_id, int(frame), float(time), track.category, float(score), *map(float, box))
        for video in reader
        for track in video.tracks
        for frame, time, score, box in zip(track.frames, track.times, track.scores, track.boxes)
    ]
    db = duckdb.connect()
    files = [out.child(commit.files[1]).path for commit in reader.commits.values()]
    db.register("summaries", pa.concat_tables(pq.read_table(path) for path in files))
    return sorted(boxes), sorted(db.sql(f"select {SUMMARY_KEYS} from summaries").fetchall())


def track_table_rows(catalog: Catalog, namespace: str) -> tuple[list[tuple], list[tuple]]:
    """The same, read from the published ``tracks`` and ``track_summaries``: pyiceberg's scan, then DuckDB."""
    db = duckdb.connect()
    for table in ("tracks", "track_summaries"):
        db.register(table, scanned(catalog, namespace, table))
    return (
        sorted(db.sql(f"select {TRACK_KEYS} from tracks").fetchall()),
        sorted(db.sql(f"select {SUMMARY_KEYS} from track_summaries").fetchall()),
    )


def added_shards(catalog: Catalog, namespace: str, table: str) -> Counter:
    """(run id, shard number) -> how many of the table's appends added it: 1 each when every shard was added once."""
    counts: Counter = Counter()
    for snapshot in catalog.load_table(f"{namespace}.{table}").snapshots():
        added = published.read({published.PROPERTY: (snapshot.summary or {}).get(ADDED_SHARDS) or "{}"})
        counts.update((run, shard) for run, shards in added.items() for shard in shards)
    return counts
