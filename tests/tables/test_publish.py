"""``tables.publish``: the committed shards' files in Iceberg tables, one current row per frame, added once."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from common.storage import Location
from tables import published
from tables.publish import publish
from tables.shard_tables import ADDED_SHARDS
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.two_runs import DATA, RUN_A, RUN_B, commit_newer_run, commit_older_run
from tests.tables.conftest import exported, scanned, table_rows

TABLES = ("frames", "detections")


def test_the_tables_hold_the_rows_export_reads(out: Location, catalog) -> None:
    commit_older_run(out)
    commit_newer_run(out)
    done = publish(out, catalog, "cams")
    assert done.units == {"frames": 3, "detections": 3}  # two shards of A, one of B (its other is uncommitted)
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    photos = {f"{DATA}/photos/{name}.jpg" for name in ("a", "b", "sub/c", "d", "bad")}
    assert {uri for _, uri, *_ in frames} == photos | {f"{DATA}/clips/v.mp4"}  # not e, of the uncommitted shard
    assert [row[:5] for row in frames if row[1].endswith("a.jpg")] == [(RUN_B, f"{DATA}/photos/a.jpg", 0, "ok", 1)]
    assert [box[:4] for box in boxes if box[1].endswith("a.jpg")] == [(RUN_B, f"{DATA}/photos/a.jpg", 0, "person")]
    assert done.deleted == {"frames": 1, "detections": 2}  # run A's row of a, and its two boxes
    assert not catalog.table_exists("cams.tracks"), "an output without tracks gets no tables of tracks"


def test_the_partition_keys_come_from_the_folders(out: Location, catalog) -> None:
    """The part files hold no run_date or source column: the tables carry them per file, and readers get them."""
    commit_older_run(out)
    commit_newer_run(out)
    part = out.fs.find(out.child("frames").path)[0]
    assert {"run_date", "source"}.isdisjoint(pq.read_schema(part).names)
    publish(out, catalog, "cams")
    for table in TABLES:
        db = duckdb.connect()
        db.register("t", scanned(catalog, "cams", table))
        rows = db.sql("select distinct run_id, strftime(run_date, '%Y-%m-%d'), source from t order by all").fetchall()
        assert rows == [(RUN_A, "2026-01-01", "photos"), (RUN_B, "2026-01-02", "photos")]
        assert [field.name for field in catalog.load_table(f"cams.{table}").spec().fields] == ["run_date", "source"]


def test_publishing_again_adds_nothing(out: Location, catalog) -> None:
    commit_older_run(out)
    commit_newer_run(out)
    publish(out, catalog, "cams")
    snapshots = {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in TABLES}
    rows = table_rows(catalog, "cams")
    again = publish(out, catalog, "cams")
    assert again.units == {"frames": 0, "detections": 0}
    assert "already hold every committed shard" in again.line()
    assert {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in TABLES} == snapshots
    assert table_rows(catalog, "cams") == rows


def test_a_later_run_supersedes_the_rows_published_before(out: Location, catalog) -> None:
    commit_older_run(out)
    first = publish(out, catalog, "cams")
    assert first.deleted == {"frames": 0, "detections": 0}
    assert table_rows(catalog, "cams") == exported(out)
    commit_newer_run(out)
    second = publish(out, catalog, "cams")
    assert second.units == {"frames": 1, "detections": 1}
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    assert [row[0] for row in frames if row[1] == f"{DATA}/photos/a.jpg"] == [RUN_B]
    assert [box[0] for box in boxes if box[1] == f"{DATA}/photos/a.jpg"] == [RUN_B]
    for table in TABLES:
        held = catalog.load_table(f"cams.{table}")
        assert published.read(held.properties) == {RUN_A: {0, 1}, RUN_B: {0}}
        added = [s.summary.get(ADDED_SHARDS) for s in held.snapshots() if s.summary and s.summary.get(ADDED_SHARDS)]
        assert added == ['{"%s":"0-1"}' % RUN_A, '{"%s":"0"}' % RUN_B]


def test_an_older_run_published_late_loses_to_the_newer_rows(out: Location, catalog) -> None:
    """A shard of a run that started earlier but committed after a newer run was published: its frames that the
    newer run also answered are superseded on arrival, in the transaction that adds them."""
    commit_older_run(out)
    publish(out, catalog, "cams")
    older = run_id(1, "000000", hour=6)
    commit_run(out, older, {"00000": [Frame(f"{DATA}/photos/a.jpg"), Frame(f"{DATA}/photos/z.jpg")]})
    late = publish(out, catalog, "cams")
    assert late.deleted == {"frames": 1, "detections": 0}
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    assert {row[0] for row in frames if row[1].endswith(("a.jpg", "z.jpg"))} == {RUN_A, older}


def test_a_table_behind_the_other_gets_its_missing_shards_only(out: Location, catalog) -> None:
    """As after a publish stopped between its two commits: ``detections`` holds the shards and ``frames`` does not
    (here made anew). The next publish adds them to ``frames`` alone, and no box twice."""
    commit_older_run(out)
    commit_newer_run(out)
    publish(out, catalog, "cams")
    boxes = table_rows(catalog, "cams")[1]
    catalog.drop_table("cams.frames")
    done = publish(out, catalog, "cams")
    assert done.units == {"frames": 3, "detections": 0}
    assert table_rows(catalog, "cams") == exported(out)
    assert table_rows(catalog, "cams")[1] == boxes
