"""Outputs to publish, made without a model (``tests/support/outputs.py``, the job's own committer), and what the
tables must hold: the rows ``export``'s reader chooses by default, read back independently of ``tables/``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from common.storage import Location, location
from exports.committed import DETECTIONS, FRAMES, CommittedRows
from tables.catalog import open_catalog
from tests.support.outputs import Frame, commit_run, run_id

RUN_A, RUN_B = run_id(1), run_id(2, "bbbbbb")
DATA = "file:///data"
FRAME_KEYS = "run_id, source_uri, frame_index, status, num_detections, width, height"
BOX_KEYS = "run_id, source_uri, frame_index, class_name, score, x1, y1, x2, y2"


def commit_first_run(out: Location) -> None:
    """Run A: photos a (2 boxes), b (none), a video's frames 0 and 5 (1 box), an error row; two shards."""
    commit_run(
        out,
        RUN_A,
        {
            "00000": [
                Frame(f"{DATA}/photos/a.jpg", [("person", 0.9, 10, 20, 110, 220), ("car", 0.4, 1.5, 2.5, 30.25, 40)]),
                Frame(f"{DATA}/photos/b.jpg"),
            ],
            "00001": [
                Frame(f"{DATA}/clips/v.mp4", index=0, width=320, height=240),
                Frame(f"{DATA}/clips/v.mp4", [("dog", 0.8, 100, 50, 300, 200)], index=5, width=320, height=240),
                Frame(f"{DATA}/photos/bad.jpg", error="decode: empty file"),
            ],
        },
    )


def commit_second_run(out: Location) -> None:
    """Run B, newer: a again (1 box), the video's frame 5 again (no box) and d; an uncommitted shard whose files
    re-do b and add e (never to be seen)."""
    commit_run(
        out,
        RUN_B,
        {
            "00000": [
                Frame(f"{DATA}/photos/a.jpg", [("person", 0.95, 12, 22, 112, 222)]),
                Frame(f"{DATA}/clips/v.mp4", index=5, width=320, height=240),
                Frame(f"{DATA}/photos/d.jpg", [("car", 0.7, 5, 5, 25, 25)]),
            ],
            "00001": [
                Frame(f"{DATA}/photos/b.jpg", [("person", 0.99, 1, 1, 2, 2)]),
                Frame(f"{DATA}/photos/e.jpg", [("person", 0.99, 1, 1, 2, 2)]),
            ],
        },
        uncommitted=frozenset({"00001"}),
        source="incoming",
    )


@pytest.fixture
def out(tmp_path: Path) -> Location:
    return location(str(tmp_path / "out"))


@pytest.fixture
def catalog(tmp_path: Path, out: Location) -> Catalog:
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
