"""``yolonas-batch iceberg``: one line and exit 0 when published, one line and exit 2 for a usage error."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.storage import Location
from tables.catalog import open_catalog
from tests.support.tracked_outputs import commit_videos, track_all
from tests.support.two_runs import commit_newer_run, commit_older_run
from tests.tables.conftest import exported, exported_tracks, table_rows, track_table_rows
from yolonas_batch.cli import main


def test_publishes_and_says_so_in_one_line(tmp_path: Path, out: Location, capsys) -> None:
    commit_older_run(out)
    commit_newer_run(out)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert main(["iceberg", out.path, "--catalog", catalog]) == 0
    said = capsys.readouterr()
    assert said.out.splitlines() == [
        "iceberg: out.frames: 3 shards added (3 files), superseded rows deleted: 1; "
        "out.detections: 3 shards added (3 files), superseded rows deleted: 2"
    ]
    assert said.err == ""
    opened = open_catalog(catalog, out.child("_iceberg").uri)
    assert table_rows(opened, "out") == exported(out)
    assert (Path(out.path) / "_iceberg" / "out" / "frames" / "metadata").is_dir()  # the warehouse: OUT/_iceberg
    assert main(["iceberg", out.path, "--catalog", catalog, "--namespace", "out"]) == 0
    assert "already hold every committed shard" in capsys.readouterr().out


def test_expires_old_snapshots_after_publishing(tmp_path: Path, out: Location, capsys) -> None:
    commit_older_run(out)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert main(["iceberg", out.path, "--catalog", catalog]) == 0
    commit_newer_run(out)
    assert main(["iceberg", out.path, "--catalog", catalog, "--expire-snapshots-older-than", "0"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 3 and said[1].startswith("iceberg: out.frames: 1 shards added")
    assert said[2].startswith("iceberg: snapshots older than 0 days: out.frames: ")
    opened = open_catalog(catalog, out.child("_iceberg").uri)
    assert [len(opened.load_table(f"out.{t}").snapshots()) for t in ("frames", "detections")] == [1, 1]
    assert table_rows(opened, "out") == exported(out)


def test_publishes_and_expires_the_tables_of_tracks_when_the_output_has_them(
    tmp_path: Path, out: Location, capsys
) -> None:
    commit_videos(out)
    track_all(out)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert main(["iceberg", out.path, "--catalog", catalog, "--expire-snapshots-older-than", "0"]) == 0
    published, expired = capsys.readouterr().out.splitlines()
    assert published.endswith(
        "; out.track_summaries: 2 videos added (2 files), superseded rows deleted: 0; "
        "out.tracks: 2 videos added (2 files), superseded rows deleted: 0"
    )
    kept = "0 expired, 1 kept"
    assert expired == (
        f"iceberg: snapshots older than 0 days: out.frames: {kept}; out.detections: {kept}; "
        f"out.track_summaries: {kept}; out.tracks: {kept}"
    )
    opened = open_catalog(catalog, out.child("_iceberg").uri)
    assert track_table_rows(opened, "out") == exported_tracks(out)
    assert table_rows(opened, "out") == exported(out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--catalog", "not a uri"], "--catalog: cannot open not a uri: "),
        (
            ["--catalog", "sqlite:////no/such/folder/catalog.db"],
            "--catalog: cannot open sqlite:////no/such/folder/catalog.db: ",
        ),
        (
            ["--catalog", "postgresql+nodriver://user:secret@host/db"],
            "--catalog: cannot open postgresql+nodriver://user:***@host/db: ",
        ),
        (["--catalog", "sqlite://", "--namespace", "a.b"], "--namespace 'a.b': expected letters, digits and _"),
        ([], "the following arguments are required: --catalog"),
        *(
            (
                ["--catalog", "sqlite://", "--expire-snapshots-older-than", days],
                f"argument --expire-snapshots-older-than: expected a number of days, 0 or more, not '{days}'",
            )
            for days in ("-1", "week", "nan", "inf")
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(out: Location, capsys, args: list[str], message: str) -> None:
    commit_older_run(out)
    assert main(["iceberg", out.path, *args]) == 2
    said = capsys.readouterr()
    assert said.out == ""
    assert said.err.count("\n") == 1
    assert said.err.startswith(f"yolonas-batch iceberg: error: {message}")
    assert "secret" not in said.err


def test_not_a_job_output_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["iceberg", str(tmp_path), "--catalog", f"sqlite:///{tmp_path / 'catalog.db'}"]) == 2
    assert (
        capsys.readouterr().err == f"yolonas-batch iceberg: error: {tmp_path.as_uri()} is not a job output: "
        "no run manifest (_runs/<run_id>.json)\n"
    )
