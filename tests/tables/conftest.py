"""Where to publish, and what the tables must hold: the rows ``export``'s reader chooses by default, and the
tables' rows read back with pyiceberg and DuckDB. The outputs are made without a model (``tests/support/two_runs.py``,
``tests/support/outputs.py``: the job's own committer)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from common.storage import Location, location
from exports.committed import DETECTIONS, FRAMES, CommittedRows
from tables import published
from tables.catalog import open_catalog
from tables.publish import ADDED_SHARDS

FRAME_KEYS = "run_id, source_uri, frame_index, status, num_detections, width, height"
BOX_KEYS = "run_id, source_uri, frame_index, class_name, score, x1, y1, x2, y2"


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


def added_shards(catalog: Catalog, namespace: str, table: str) -> Counter:
    """(run id, shard number) -> how many of the table's appends added it: 1 each when every shard was added once."""
    counts: Counter = Counter()
    for snapshot in catalog.load_table(f"{namespace}.{table}").snapshots():
        added = published.read({published.PROPERTY: (snapshot.summary or {}).get(ADDED_SHARDS) or "{}"})
        counts.update((run, shard) for run, shards in added.items() for shard in shards)
    return counts
