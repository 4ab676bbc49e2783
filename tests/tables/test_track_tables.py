"""``tables.track_tables``, through ``tables.publish``: of each video, the tracks of its newest committed version,
exactly as ``export`` reads them; a newer version replaces the older's files whole, in one snapshot; a version is
added once, and a table behind the other catches up alone."""

from __future__ import annotations

import duckdb

from common.storage import Location
from schemas import layout
from schemas.manifest import TrackCommit
from schemas.track_config import TrackerSettings
from tables import track_tables
from tables.publish import publish
from tests.support.tracked_outputs import commit_videos, track_all
from tests.tables.conftest import exported_tracks, scanned, track_table_rows

TABLES = ("tracks", "track_summaries")
STRICT = TrackerSettings(new_track_score=0.85)
"""Starts no track from boxes scored below 0.85: of the clip only the person's, of the walk none (an empty file)."""


def stamp(out: Location, commits: list[TrackCommit], at: str) -> None:
    """Rewrite the markers of ``commits`` as committed at ``at``: which version is newest, whatever the clock."""
    for commit in commits:
        stamped = commit.model_copy(update={"committed_at": at})
        out.child(layout.track_marker(commit.key)).write_bytes_atomic(stamped.model_dump_json().encode())


def data_files(catalog, table: str) -> set[str]:
    """The table's data files, empty ones included (which a scan skips)."""
    return set(catalog.load_table(f"cams.{table}").inspect.files().column("file_path").to_pylist())


def version_files(out: Location, commits: list[TrackCommit], table: str) -> set[str]:
    return {out.child(name).uri for commit in commits for name in commit.files if name.startswith(f"{table}/")}


def test_the_tables_hold_the_tracks_export_reads(out: Location, catalog) -> None:
    commit_videos(out)
    commits = track_all(out)
    done = publish(out, catalog, "cams")
    assert done.units == {"detections": 2, "frames": 2, "tracks": 2, "track_summaries": 2}
    tracks, summaries = track_table_rows(catalog, "cams")
    assert (tracks, summaries) == exported_tracks(out)
    assert len(summaries) == 3 and len(tracks) == 26, "the walk's person, the clip's person and car"
    for table in TABLES:
        assert track_tables.read(catalog.load_table(f"cams.{table}").properties) == {c.key for c in commits}
        db = duckdb.connect()
        db.register("t", scanned(catalog, "cams", table))
        db.register("frames", scanned(catalog, "cams", "frames"))
        partitions = "select distinct strftime(run_date, '%Y-%m-%d'), source from {} order by all"
        assert db.sql(partitions.format("t")).fetchall() == db.sql(partitions.format("frames")).fetchall() != []


def test_a_newer_version_replaces_the_older_files_whole(out: Location, catalog) -> None:
    """Both versions committed, as a run killed before it removed the older leaves them: the tables hold the one
    whose marker is newest, as ``export`` does, and follow when another is made newest."""
    commit_videos(out)
    default = track_all(out)
    publish(out, catalog, "cams", ["tracks"])
    strict = track_all(out, STRICT)
    stamp(out, default, "2026-02-01T00:00:00+00:00")
    stamp(out, strict, "2026-02-02T00:00:00+00:00")
    done = publish(out, catalog, "cams", ["tracks"])
    assert done.units == {"tracks": 2, "track_summaries": 2}
    assert done.deleted == {"tracks": sum(c.boxes for c in default), "track_summaries": sum(c.tracks for c in default)}
    assert track_table_rows(catalog, "cams") == exported_tracks(out)
    assert [c.tracks for c in strict] == [1, 0]
    for table in TABLES:
        assert data_files(catalog, table) == version_files(out, strict, table), "dropped whole, none rewritten"
        assert track_tables.read(catalog.load_table(f"cams.{table}").properties) == {c.key for c in strict}

    stamp(out, default, "2026-02-03T00:00:00+00:00")
    publish(out, catalog, "cams", ["tracks"])
    assert track_table_rows(catalog, "cams") == exported_tracks(out)
    assert data_files(catalog, "tracks") == version_files(out, default, "tracks")


def test_publishing_again_adds_nothing(out: Location, catalog) -> None:
    commit_videos(out)
    track_all(out)
    assert publish(out, catalog, "cams").line() == (
        "iceberg: cams.frames: 2 shards added (2 files), superseded rows deleted: 0; "
        "cams.detections: 2 shards added (2 files), superseded rows deleted: 0; "
        "cams.track_summaries: 2 videos added (2 files), superseded rows deleted: 0; "
        "cams.tracks: 2 videos added (2 files), superseded rows deleted: 0"
    )
    snapshots = {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in TABLES}
    rows = track_table_rows(catalog, "cams")
    assert publish(out, catalog, "cams").line() == (
        "iceberg: cams.frames and cams.detections already hold every committed shard; "
        "cams.track_summaries and cams.tracks already hold the newest tracks of every tracked video"
    )
    assert {t: len(catalog.load_table(f"cams.{t}").snapshots()) for t in TABLES} == snapshots
    assert track_table_rows(catalog, "cams") == rows


def test_a_table_behind_the_other_gets_its_missing_videos_only(out: Location, catalog) -> None:
    """As after a publish stopped between its two commits: ``track_summaries`` (made anew here) gets the videos,
    ``tracks`` nothing twice."""
    commit_videos(out)
    track_all(out)
    publish(out, catalog, "cams", ["tracks"])
    catalog.drop_table("cams.track_summaries")
    done = publish(out, catalog, "cams", ["tracks"])
    assert done.units == {"tracks": 0, "track_summaries": 2}
    assert track_table_rows(catalog, "cams") == exported_tracks(out)
