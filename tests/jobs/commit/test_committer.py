"""A publish task that checked its fence, then stalled while another run took the output over and finished, lands
its marker late: its shard never counts, its files never replace the holder's, and every reader (the committed
files that ``export``, ``report`` and ``track`` read, ``ShardMarkers``, a later resume, a later ``--incremental``
run) agrees on an output with every frame once. Real runs on the session's Ray; the stalled task is
``ShardCommitter.commit`` driven in a thread of the test, held right after its fence check by the test's fence."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from common.committed_files import committed_files
from common.epochs import EpochRecords
from common.storage import Location, location
from jobs.commit.committer import ShardCommitter
from jobs.planning.plan import Plan
from jobs.records.fence import Fence
from jobs.records.lease import RunLease
from jobs.records.lease_stores import LocalLeaseStore
from jobs.records.run_store import RunStore
from jobs.records.shard_markers import ShardMarkers, record_epoch
from schemas import layout
from schemas.manifest import ShardCommit
from schemas.tables import RESULTS_SCHEMA, STATUS_OK
from tests.support.job_runs import expire_lease, photo_keys, run_detect
from tests.support.photos import numbered_photos

pytestmark = pytest.mark.timeout(300)
"""Four whole runs on the session's Ray (10-30 s each here, twice that on a busy machine)."""

PHOTOS = 6
SHARD_SIZE = 2
STALLED = "00001"
"""The shard the stalled task publishes: one the run that takes over must do again."""
HOLD_S = 240.0
"""How long the stalled task waits to be let go at most: only a guard against a test that never lets it go."""


@dataclass(frozen=True)
class _HeldAfterCheck(Fence):
    """The lease's own fence, checked for real, that then holds its caller until ``go`` is set: a publish task
    that passed its check and stalled (a PUT retried for minutes) right before writing its marker."""

    checked: threading.Event = field(default_factory=threading.Event, compare=False)
    go: threading.Event = field(default_factory=threading.Event, compare=False)

    def check(self) -> None:
        super().check()
        self.checked.set()
        if not self.go.wait(HOLD_S):
            raise TimeoutError("the test never let the stalled publish go")


def _rows(plan: Plan, shard: str) -> pa.Table:
    """The shard's results as the stalled task would publish them: a frame of each of its items."""
    items = plan.table.filter(pc.equal(plan.table.column("shard_id"), shard))
    n = items.num_rows
    return pa.table(
        {
            "shard_id": items.column("shard_id"),
            "partition": items.column("partition"),
            "source_uri": items.column("source_uri"),
            "item": items.column("item"),
            "item_rows": pa.array([1] * n, pa.int32()),
            "frame_index": pa.array([0] * n, pa.int64()),
            "timestamp_s": pa.nulls(n, pa.float64()),
            "width": pa.array([64] * n, pa.int32()),
            "height": pa.array([48] * n, pa.int32()),
            "status": [STATUS_OK] * n,
            "error": pa.nulls(n, pa.string()),
            "boxes": pa.array([[]] * n, RESULTS_SCHEMA.field("boxes").type),
        },
        schema=RESULTS_SCHEMA,
    )


def _take_elsewhere(out: Location, run_id: str, lock_dir: Path) -> RunLease:
    """The output's lease taken and recorded as ``_open_run`` does, by a run on another host: its ``flock`` is that
    host's own (a lock file this host does not share), only the lease record is common."""
    lease_path = out.child(layout.lease()).path
    store = LocalLeaseStore(lease_path, str(lock_dir / "_lease.lock"), out.child(layout.lease_write_lock()).path)
    lease = RunLease(out, run_id, ttl_s=60, store=store)
    lease.acquire()
    records = EpochRecords.listed(out)
    lease.announce(run_id, past_epoch=records.latest)
    record_epoch(lease.fence, records)
    return lease


def _keys(files: list[str]) -> list[tuple[str, int]]:
    table = pa.concat_tables(pq.read_table(path, columns=["source_uri", "frame_index"]) for path in files)
    return sorted(zip(table.column("source_uri").to_pylist(), table.column("frame_index").to_pylist()))


def _assert_every_frame_once(out: Path, photos: Path, run_id: str, counted_shards: set[str]) -> None:
    """Every reader agrees: the committed files, the markers that count, and a plain read of the tables."""
    expected = photo_keys(photos)
    assert _keys(committed_files(location(str(out))).of(layout.FRAMES)) == expected
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table()
    assert sorted(zip(frames.column("source_uri").to_pylist(), frames.column("frame_index").to_pylist())) == expected
    assert ShardMarkers(location(str(out)), run_id).committed_ids() == counted_shards


def test_a_publish_stalled_past_a_takeover_never_counts_and_every_reader_agrees(
    tmp_path, coco_images, probe_weights, ray_cluster
):
    photos = numbered_photos(tmp_path / "photos", coco_images, PHOTOS)
    out = tmp_path / "out"
    first = run_detect([photos], out, probe_weights, shard_size=SHARD_SIZE)
    assert first.result.exit_code == 0, first.log
    run_id, shards = first.manifest.run_id, set(first.manifest.shards)
    where = location(str(out))
    markers = ShardMarkers(where, run_id)
    marker = markers.marker(STALLED, first.manifest.attempts[-1].lease_epoch or 0)
    marker.fs.rm_file(marker.path)  # as an attempt killed between this shard's part files and its marker leaves it

    # a resumed attempt on another host: its publish of the shard passes its fence check, then stalls
    stalled_lease = _take_elsewhere(where, run_id, tmp_path)
    fence = _HeldAfterCheck(**{f.name: getattr(stalled_lease.fence, f.name) for f in fields(Fence)})
    committer = ShardCommitter(where, run_id, tuple(first.manifest.model.class_names), fence)
    published: list[ShardCommit] = []
    plan = Plan.load(RunStore(where).plan_location(run_id))
    task = threading.Thread(target=lambda: published.append(committer.commit(STALLED, _rows(plan, STALLED), 2)))
    task.start()
    assert fence.checked.wait(60), "the stalled publish never reached its fence check"

    # its host stalls past the lease's expiry; the same command takes the output over, redoes the shard, finishes
    expire_lease(out)
    second = run_detect([photos], out, probe_weights, shard_size=SHARD_SIZE)
    assert second.result.exit_code == 0, second.log
    assert second.manifest.run_id == run_id and f"{SHARD_SIZE} items to process" in second.log
    holder_epoch = second.manifest.attempts[-1].lease_epoch
    assert holder_epoch == fence.epoch + 1
    holders = {path: path.read_bytes() for path in out.rglob("*.parquet")}

    fence.go.set()  # the stalled task wakes up and lands its marker
    task.join(timeout=60)
    assert published and Path(markers.marker(STALLED, fence.epoch).path).exists(), "the late marker landed"
    assert {path: path.read_bytes() for path in out.rglob("*.parquet")} == holders, "no file of the holder replaced"
    assert not set(published[0].files) & {str(path.relative_to(out)) for path in holders}
    assert markers.counted()[STALLED].epoch == holder_epoch
    _assert_every_frame_once(out, photos, run_id, shards)

    resumed = run_detect([photos], out, probe_weights, shard_size=SHARD_SIZE)
    assert resumed.result.exit_code == 0, resumed.log
    assert "0 items to process" in resumed.log
    assert (resumed.manifest.status, resumed.manifest.counts.frames) == ("completed", PHOTOS)
    assert not Path(markers.marker(STALLED, fence.epoch).path).exists(), "the resume reconciled the late marker away"
    _assert_every_frame_once(out, photos, run_id, shards)

    later = run_detect([photos], out, probe_weights, shard_size=SHARD_SIZE, incremental=True)
    assert later.result.exit_code == 0, later.log
    assert f"incremental: 0 of {PHOTOS} inputs are new or changed" in later.log
    _assert_every_frame_once(out, photos, run_id, shards)
    stalled_lease.release()  # long since another's: left alone
