"""``ShardMarkers`` on a local output written by the job's committer: a holder's epoch record names the previous
holder's markers that are whole when it takes over, and no marker that lands later; ``reconcile`` brings a run's
markers and part files in line with what counts, never touching what a later epoch wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.epochs import EpochRecords
from common.storage import Location, location
from jobs.planning.plan import Plan
from jobs.records.lease import LeaseLost, RunLease
from jobs.records.run_store import RunStore
from jobs.records.shard_markers import ShardMarkers, record_epoch
from schemas import layout
from tests.support.outputs import Frame, commit_run, run_id

RUN = run_id(1)
SHARDS = ("00000", "00001", "00002")


def _frames(*shards: str) -> dict[str, list[Frame]]:
    return {shard: [Frame(f"{shard}-{i}.jpg", boxes=[("dog", 0.9, 1, 2, 3, 4)]) for i in range(2)] for shard in shards}


def _take(out: Location, run: str) -> RunLease:
    """The output's lease taken and recorded as a run's ``_open_run`` does."""
    lease = RunLease(out, run, ttl_s=60).acquire()
    records = EpochRecords.listed(out)
    lease.announce(run, past_epoch=records.latest)
    record_epoch(lease.fence, records)
    return lease


def _partitions(out: Location, run: str) -> set[str]:
    return Plan.load(RunStore(out).plan_location(run)).partitions


def test_a_holder_records_the_whole_markers_of_the_one_before_and_a_late_marker_never_counts(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    first = _take(out, RUN)
    commit_run(out, RUN, _frames(*SHARDS), epoch=first.fence.epoch)
    markers = ShardMarkers(out, RUN)
    commits = markers.committed()
    (tmp_path / "out" / commits["00001"].files[0]).unlink()  # a shard whose files a cleanup took
    late = markers.marker("00002", first.fence.epoch)
    landed = late.read_bytes()
    late.fs.rm_file(late.path)  # not landed yet: its writer checked its fence, then stalled
    first.release()

    second = _take(out, run_id(2))
    assert second.fence.epoch == first.fence.epoch + 1
    record = EpochRecords.listed(out).record(second.fence.epoch)
    assert (record.run_id, record.counted) == (run_id(2), [layout.marker(RUN, "00000", first.fence.epoch)])
    late.write_bytes_atomic(landed)  # lands after the takeover, its files all there
    assert markers.committed_ids() == {"00000"}
    with pytest.raises(LeaseLost, match="epoch record"):
        record_epoch(second.fence, EpochRecords.listed(out))  # recorded once per epoch
    second.release()


def test_reconcile_drops_unbacked_markers_and_leftovers_of_its_epoch_and_before_only(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    commit_run(out, RUN, _frames(*SHARDS), uncommitted={"00002"}, epoch=2)  # 00002: files, no marker
    markers = ShardMarkers(out, RUN)
    files = {shard: commit.files for shard, commit in markers.committed().items()}
    (tmp_path / "out" / files["00001"][0]).unlink()
    partial_part = tmp_path / "out" / f"{files['00000'][0]}.1a2b3c4d{layout.PARTIAL_SUFFIX}"
    partial_part.write_bytes(b"half")
    partial_marker = Path(markers.marker("00001", 2).path + f".5e6f7a8b{layout.PARTIAL_SUFFIX}")
    partial_marker.write_bytes(b"half")
    later = tmp_path / "out" / files["00000"][0].replace("-e2.parquet", "-e3.parquet")
    later.write_bytes(b"a later holder's file, its marker not written yet")

    commits, removed = markers.reconcile(2, _partitions(out, RUN))
    assert set(commits) == {"00000"} and commits["00000"].files == files["00000"]
    left = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file()}
    parts = {name for name in left if layout.parse_part_file(name)}
    assert parts == {*files["00000"], str(later.relative_to(tmp_path / "out"))}
    assert not partial_part.exists() and not partial_marker.exists()
    assert markers.committed_ids() == {"00000"}
    assert removed == len(files["00001"]) - 1 + 1 + 2 + 2  # 00001's files and marker, 00002's files, the partials
    assert markers.reconcile(2, _partitions(out, RUN)) == (commits, 0)


def test_a_holder_that_lost_the_output_removes_nothing_of_a_later_epoch(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    commit_run(out, RUN, _frames("00000"), uncommitted={"00000"}, epoch=5)  # the later holder's, marker to come
    before = sorted(p for p in (tmp_path / "out").rglob("*.parquet"))
    assert ShardMarkers(out, RUN).reconcile(4, _partitions(out, RUN)) == ({}, 0)
    assert sorted(p for p in (tmp_path / "out").rglob("*.parquet")) == before
