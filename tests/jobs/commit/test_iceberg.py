"""``jobs.commit.iceberg`` without Ray: outputs made by the job's own committer (``tests/support/two_runs.py``),
published to a real SQLite catalog in batches paced by an injected clock; a publish that fails is told and
repaired by the next; the catalog is checked before any work; a run without ``--iceberg`` imports no pyiceberg."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from common.errors import UsageError
from common.storage import Location, location
from jobs.commit.iceberg import IcebergPublisher, IcebergTarget, open_target
from jobs.records.lease import RunLease
from schemas import layout
from schemas.config import JobConfig
from schemas.track_config import TrackConfig
from tables import published
from tables.catalog import open_catalog
from tables.shard_tables import ADDED_SHARDS
from tests.support import failing_catalog
from tests.support.fake_clock import FakeClock
from tests.support.tracked_outputs import commit_videos, track_all
from tests.support.two_runs import RUN_A, RUN_B, commit_newer_run, commit_older_run
from tests.tables.conftest import exported, exported_tracks, table_rows, track_table_rows


@pytest.fixture
def out(tmp_path: Path) -> Location:
    return location(str(tmp_path / "out"))


def _held(target: IcebergTarget, table: str) -> published.Shards:
    name = f"{target.namespace}.{table}"
    return published.read(target.catalog.load_table(name).properties) if target.catalog.table_exists(name) else {}


def test_publishes_a_full_batch_or_an_old_one(tmp_path: Path, out: Location) -> None:
    target = IcebergTarget(open_catalog(f"sqlite:///{tmp_path / 'c.db'}", (tmp_path / "wh").as_uri()), "cams")
    clock, stream = FakeClock(), io.StringIO()
    commit_older_run(out)
    older = IcebergPublisher(target, out, RUN_A, None, stream, every_shards=2, every_s=30, clock=clock.monotonic)
    older.committed()
    assert _held(target, "frames") == {}, "one shard of two: not yet"
    older.committed()
    assert _held(target, "frames") == {RUN_A: {0, 1}} and older.state is not None
    assert older.state.published_shards == 2 and older.state.error is None

    commit_newer_run(out)
    newer = IcebergPublisher(target, out, RUN_B, None, stream, every_shards=2, every_s=30, clock=clock.monotonic)
    clock.advance(31)
    newer.committed()
    assert _held(target, "frames") == {RUN_A: {0, 1}, RUN_B: {0}}
    assert table_rows(target.catalog, "cams") == exported(out)
    assert stream.getvalue() == ""


def test_a_failed_publish_is_one_line_and_the_next_adds_what_it_missed(
    tmp_path: Path, out: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``frames``' commit fails after ``detections``' landed: the next publish adds the shards to ``frames`` only."""
    catalog = failing_catalog.FailingCatalog(
        "yolonas_batch", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=(tmp_path / "wh").as_uri()
    )
    target = IcebergTarget(catalog, "cams")
    monkeypatch.setattr(failing_catalog, "FAILING", {"frames"})
    commit_older_run(out)
    stream = io.StringIO()
    publisher = IcebergPublisher(target, out, RUN_A, None, stream)
    state = publisher.publish()
    assert state is not None and state.published_shards == 0
    assert state.error == "CommitFailedException: injected: the commit to frames failed"
    assert stream.getvalue() == f"iceberg: publish failed, tried again later: {state.error}\n"
    assert (_held(target, "detections"), _held(target, "frames")) == ({RUN_A: {0, 1}}, {})

    failing_catalog.FAILING.clear()
    state = publisher.publish()
    assert state is not None and (state.published_shards, state.error) == (2, None)
    for table in ("frames", "detections"):
        added = [s.summary.get(ADDED_SHARDS) for s in catalog.load_table(f"cams.{table}").snapshots() if s.summary]
        assert [a for a in added if a] == ['{"%s":"0-1"}' % RUN_A], f"{table}: each shard added once"
    assert table_rows(catalog, "cams") == exported(out)


def test_the_tables_of_tracks_are_published_the_same_way(
    tmp_path: Path, out: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``track --iceberg``'s publisher: a failed commit to ``track_summaries`` is one line, and the next publish
    adds the videos to it alone; the state counts the videos the tables hold."""
    catalog = failing_catalog.FailingCatalog(
        "yolonas_batch", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=(tmp_path / "wh").as_uri()
    )
    monkeypatch.setattr(failing_catalog, "FAILING", {"track_summaries"})
    commit_videos(out)
    track_all(out)
    stream = io.StringIO()
    publisher = IcebergPublisher(IcebergTarget(catalog, "cams"), out, "run", None, stream, tables=layout.TRACK_TABLES)
    state = publisher.publish()
    assert state is not None and state.error == "CommitFailedException: injected: the commit to track_summaries failed"
    assert stream.getvalue().count("\n") == 1 and not catalog.table_exists("cams.frames")
    failing_catalog.FAILING.clear()
    state = publisher.publish()
    assert state is not None and (state.published_shards, state.error) == (2, None)
    assert track_table_rows(catalog, "cams") == exported_tracks(out)


def test_a_run_that_no_longer_holds_the_output_publishes_nothing(tmp_path: Path, out: Location) -> None:
    target = IcebergTarget(open_catalog(f"sqlite:///{tmp_path / 'c.db'}", (tmp_path / "wh").as_uri()), "cams")
    commit_older_run(out)
    with RunLease(out, RUN_A, ttl_s=60) as lease:
        fence = lease.fence
    stream = io.StringIO()
    state = IcebergPublisher(target, out, RUN_A, fence, stream).publish()
    assert state is not None and state.error is not None and "LeaseLost" in state.error
    assert stream.getvalue().count("\n") == 1 and not target.catalog.table_exists("cams.frames")


def test_without_a_target_it_does_nothing(out: Location) -> None:
    publisher = IcebergPublisher(None, out, RUN_A, None, io.StringIO())
    publisher.committed()
    assert publisher.publish() is None and publisher.state is None


@pytest.mark.parametrize(
    "options, message",
    [
        ({"iceberg": "sqlite:////no/such/folder/c.db"}, "--iceberg: cannot open sqlite:////no/such/folder/c.db: "),
        ({"iceberg": "postgresql+nodriver://u:secret@host/db"}, "--iceberg: cannot open postgresql+nodriver://u:***@"),
        ({"iceberg": "sqlite://", "iceberg_namespace": "a.b"}, "--iceberg-namespace 'a.b': expected letters"),
    ],
)
def test_what_cannot_publish_is_a_usage_error(out: Location, options: dict, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        open_target(JobConfig(sources=["x.jpg"], output=out.path, **options), out)
    assert str(refused.value).startswith(message) and "secret" not in str(refused.value)


def test_the_embedded_catalog_of_an_output_on_an_object_store_is_a_usage_error() -> None:
    config = JobConfig(sources=["x.jpg"], output="s3://bucket/out", iceberg="local")
    with pytest.raises(UsageError, match=r"^--iceberg local: the embedded catalog lives in a local output, not in s3:"):
        open_target(config, location(config.output))


def test_the_namespace_is_made_from_the_output_folder_and_local_is_a_catalog_inside_it(tmp_path: Path) -> None:
    out = location(str(tmp_path / "my cams"))
    target = open_target(JobConfig(sources=["x.jpg"], output=out.path, iceberg="local"), out)
    assert target is not None and target.namespace.startswith("my_cams_")
    assert (tmp_path / "my cams" / "_iceberg" / "catalog.db").is_file()


def test_track_takes_the_same_catalog_and_namespace(tmp_path: Path) -> None:
    out = location(str(tmp_path / "my cams"))
    target = open_target(TrackConfig(output=out.path, iceberg="sqlite://"), out)
    assert target is not None and target.namespace.startswith("my_cams_")
    with pytest.raises(UsageError, match="^--iceberg-namespace 'a.b': expected letters"):
        open_target(TrackConfig(output=out.path, iceberg="sqlite://", iceberg_namespace="a.b"), out)


def test_the_saved_config_has_no_password() -> None:
    config = JobConfig(sources=["x.jpg"], output="o", iceberg="postgresql://u:secret@host/db")
    assert config.public_dump()["iceberg"] == "postgresql://u:***@host/db"


@pytest.mark.slow
def test_a_run_without_iceberg_imports_no_pyiceberg(tmp_path: Path) -> None:
    """The job's whole path up to publishing (``detect``'s and ``track``'s), in a process of its own: ``--iceberg``
    alone brings pyiceberg in."""
    code = (
        "import sys\n"
        "import jobs.cli, jobs.runner\n"
        "from common.storage import location\n"
        "from jobs.commit.iceberg import IcebergPublisher, open_target\n"
        "from schemas.config import JobConfig\n"
        f"out = location({str(tmp_path)!r})\n"
        "target = open_target(JobConfig(sources=['x.jpg'], output=out.path), out)\n"
        "IcebergPublisher(target, out, 'run', None, sys.stdout).publish()\n"
        "import jobs.tracking.cli, jobs.tracking.runner\n"
        "from schemas.track_config import TrackConfig\n"
        "assert open_target(TrackConfig(output=out.path), out) is None\n"
        "assert 'pyiceberg' not in sys.modules, 'pyiceberg was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
