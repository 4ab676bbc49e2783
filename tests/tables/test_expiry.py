"""``tables.expiry``: snapshots older than the cutoff go, the current one stays, and the tables read the same."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from common.storage import Location
from tables.expiry import expire
from tables.publish import publish
from tests.support.two_runs import commit_newer_run, commit_older_run
from tests.tables.conftest import exported, table_rows

TABLES = ("frames", "detections")


def _published_twice(out: Location, catalog) -> dict[str, list[int]]:
    """Two publishes, the second superseding rows of the first (an append and a delete, two snapshots): each
    table's snapshot ids, oldest first."""
    commit_older_run(out)
    publish(out, catalog, "cams")
    commit_newer_run(out)
    publish(out, catalog, "cams")
    return {t: [s.snapshot_id for s in catalog.load_table(f"cams.{t}").snapshots()] for t in TABLES}


def test_older_snapshots_go_and_the_current_one_stays(out: Location, catalog) -> None:
    before = _published_twice(out, catalog)
    rows = table_rows(catalog, "cams")
    later = datetime.now(timezone.utc) + timedelta(days=8)  # every snapshot is over a week old by then
    done = expire(catalog, "cams", 7, later)
    for table in TABLES:
        held = catalog.load_table(f"cams.{table}")
        current = held.current_snapshot()
        assert current is not None and current.snapshot_id == before[table][-1]
        assert [s.snapshot_id for s in held.snapshots()] == [current.snapshot_id]
        assert done.expired[table] == len(before[table]) - 1 > 0 and done.kept[table] == 1
    assert done.line() == (
        "iceberg: snapshots older than 7 days: cams.frames: 2 expired, 1 kept; cams.detections: 2 expired, 1 kept"
    )
    assert table_rows(catalog, "cams") == rows == exported(out)
    assert publish(out, catalog, "cams").units == {"frames": 0, "detections": 0}  # still knows what it holds


def test_snapshots_newer_than_the_cutoff_stay(out: Location, catalog) -> None:
    before = _published_twice(out, catalog)
    done = expire(catalog, "cams", 7, datetime.now(timezone.utc))
    assert done.expired == {"frames": 0, "detections": 0}
    assert {t: [s.snapshot_id for s in catalog.load_table(f"cams.{t}").snapshots()] for t in TABLES} == before
