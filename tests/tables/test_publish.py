"""``tables.publish``: the committed shards' files in Iceberg tables, one current row per frame, added once."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from common.storage import Location
from tables import published
from tables.publish import ADDED_SHARDS, publish
from tests.support.outputs import Frame, commit_run, run_id
from tests.tables.conftest import (
    DATA,
    RUN_A,
    RUN_B,
    commit_first_run,
    commit_second_run,
    exported,
    scanned,
    table_rows,
)


def test_the_tables_hold_the_rows_export_reads(out: Location, catalog) -> None:
    commit_first_run(out)
    commit_second_run(out)
    done = publish(out, catalog, "cams")
    assert done.shards == {"frames": 3, "detections": 3}  # two shards of A, one of B (its other is uncommitted)
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    assert {uri for _, uri, *_ in frames} == {f"{DATA}/photos/{n}.jpg" for n in "abd"} | {
        f"{DATA}/clips/v.mp4",
        f"{DATA}/photos/bad.jpg",
    }
    assert [row[:3] for row in frames if row[1].endswith(("a.jpg", "v.mp4"))] == [
        (RUN_A, f"{DATA}/clips/v.mp4", 0),
        (RUN_B, f"{DATA}/clips/v.mp4", 5),
        (RUN_B, f"{DATA}/photos/a.jpg", 0),
    ]
    assert done.deleted == {"frames": 2, "detections": 3}  # A's a and v.mp4#5; A's two boxes of a, one of v.mp4#5


def test_the_partition_keys_come_from_the_folders(out: Location, catalog) -> None:
    """The part files hold no run_date or source column: the tables carry them per file, and readers get them."""
    commit_first_run(out)
    commit_second_run(out)
    part = out.fs.find(out.child("frames").path)[0]
    assert {"run_date", "source"}.isdisjoint(pq.read_schema(part).names)
    publish(out, catalog, "cams")
    keys = {"frames": [(RUN_A, "2026-01-01", "photos"), (RUN_B, "2026-01-02", "incoming")]}
    keys["detections"] = keys["frames"][1:]  # every box of run A is superseded
    for table, expected in keys.items():
        db = duckdb.connect()
        db.register("t", scanned(catalog, "cams", table))
        rows = db.sql("select distinct run_id, strftime(run_date, '%Y-%m-%d'), source from t order by all").fetchall()
        assert rows == expected
        assert [field.name for field in catalog.load_table(f"cams.{table}").spec().fields] == ["run_date", "source"]


def test_publishing_again_adds_nothing(out: Location, catalog) -> None:
    commit_first_run(out)
    commit_second_run(out)
    publish(out, catalog, "cams")
    snapshots = {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in ("frames", "detections")}
    rows = table_rows(catalog, "cams")
    again = publish(out, catalog, "cams")
    assert again.shards == {"frames": 0, "detections": 0}
    assert "already hold every committed shard" in again.line()
    assert {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in ("frames", "detections")} == snapshots
    assert table_rows(catalog, "cams") == rows


def test_a_later_run_supersedes_the_rows_published_before(out: Location, catalog) -> None:
    commit_first_run(out)
    first = publish(out, catalog, "cams")
    assert first.deleted == {"frames": 0, "detections": 0}
    assert table_rows(catalog, "cams") == exported(out)
    commit_second_run(out)
    second = publish(out, catalog, "cams")
    assert second.shards == {"frames": 1, "detections": 1}
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    a = [row for row in frames if row[1] == f"{DATA}/photos/a.jpg"]
    assert a == [(RUN_B, f"{DATA}/photos/a.jpg", 0, "ok", 1, 64, 48)]
    assert [box[0] for box in boxes if box[1] == f"{DATA}/photos/a.jpg"] == [RUN_B]
    table = catalog.load_table("cams.frames")
    assert published.read(table.properties) == {RUN_A: {0, 1}, RUN_B: {0}}
    assert table.current_snapshot() is not None
    appended = [s.summary.get(ADDED_SHARDS) for s in table.snapshots() if s.summary and s.summary.get(ADDED_SHARDS)]
    assert appended == ['{"%s":"0-1"}' % RUN_A, '{"%s":"0"}' % RUN_B]


def test_an_older_run_published_late_loses_to_the_newer_rows(out: Location, catalog) -> None:
    """A shard of a run that started earlier but committed after a newer run was published: its frames that the
    newer run also answered are superseded on arrival, in the transaction that adds them."""
    commit_first_run(out)
    publish(out, catalog, "cams")
    older = run_id(1, "000000", hour=6)
    commit_run(out, older, {"00000": [Frame(f"{DATA}/photos/a.jpg"), Frame(f"{DATA}/photos/z.jpg")]})
    late = publish(out, catalog, "cams")
    assert late.deleted["frames"] == 1
    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(out)
    assert {row[0] for row in frames if row[1].endswith(("a.jpg", "z.jpg"))} == {RUN_A, older}
