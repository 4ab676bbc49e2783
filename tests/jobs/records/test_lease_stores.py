"""The run lease's stores: on local disk, the ``flock`` that keeps a host's other processes out and the hard link
and hashed etag that make writes conditional; on a real S3 API (moto's server), the conditional headers and the
store-clock age. With them, the protocol over real files: racing processes, a killed holder, a pickled fence."""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from common.storage import Location, location
from jobs.records.clock import SYSTEM_CLOCK, Clock
from jobs.records.lease import Conflict, LeaseHeld, LeaseLost, LeaseRecord, RunLease
from jobs.records.lease_holder import this_process
from jobs.records.lease_stores import LocalLeaseStore, S3LeaseStore, store_for
from schemas import layout
from tests.support.fake_clock import FakeClock
from tests.support.job_runs import wait_until
from tests.support.s3 import FlakyProxy, s3_client, s3_storage_options
from workers.files import write_atomic

REPO = Path(__file__).resolve().parents[3]
RUN_A = "20261204T050000Z-aaaaaa"
RUN_B = "20261204T050100Z-bbbbbb"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _record(run_id: str, expires: datetime, ttl_s: float = 180.0, epoch: int = 1) -> LeaseRecord:
    return LeaseRecord(
        run_id=run_id,
        host="gone-host",
        pid=2**22 + 1,
        epoch=epoch,
        acquired_at=f"{expires - timedelta(hours=1):{TIME_FORMAT}}",
        renewed_at=f"{expires - timedelta(seconds=ttl_s):{TIME_FORMAT}}",
        expires_at=f"{expires:{TIME_FORMAT}}",
        ttl_s=ttl_s,
        nonce="0123456789abcdef",
    )


def _local_store(out: Path, clock: Clock = SYSTEM_CLOCK) -> LocalLeaseStore:
    store = store_for(location(str(out)), clock)
    assert isinstance(store, LocalLeaseStore)
    return store


def _stored(out: Location) -> LeaseRecord | None:
    try:
        return LeaseRecord.model_validate_json(out.child(layout.lease()).read_bytes())
    except FileNotFoundError:
        return None


def test_the_local_lock_keeps_another_handle_out_until_let_go(tmp_path: Path):
    holder, other = _local_store(tmp_path / "out"), _local_store(tmp_path / "out")
    assert holder.lock() and holder.lock()  # taken, and taken again by its holder
    assert not other.lock()
    holder.unlock()
    assert other.lock()
    other.unlock()
    assert os.path.exists(other.lock_path), "the lock file stays: a run could lock one already unlinked"


def test_a_local_create_is_refused_where_the_lease_exists(tmp_path: Path):
    store = _local_store(tmp_path / "out")
    first = _record(RUN_A, datetime.now(timezone.utc)).dump()
    assert store.create(first) == hashlib.sha256(first).hexdigest()
    with pytest.raises(Conflict):
        store.create(_record(RUN_B, datetime.now(timezone.utc)).dump())
    assert Path(store.path).read_bytes() == first
    assert os.listdir(os.path.dirname(store.path)) == ["_lease.json"], "no partial file left behind"


def test_a_local_replace_holds_only_at_the_etag_read(tmp_path: Path):
    store = _local_store(tmp_path / "out")
    now = datetime.now(timezone.utc)
    with pytest.raises(FileNotFoundError):
        store.replace(b"{}", "no-etag")
    read = store.create(_record(RUN_A, now).dump())
    renewed = store.replace(_record(RUN_A, now + timedelta(seconds=60)).dump(), read)
    with pytest.raises(Conflict):
        store.replace(_record(RUN_B, now).dump(), read)
    write_atomic(store.path, _record(RUN_B, now, epoch=2).dump())  # a run on another host took it over
    with pytest.raises(Conflict):
        store.replace(_record(RUN_A, now).dump(), renewed)
    seen = store.read()
    assert seen is not None and seen.record.run_id == RUN_B


def test_racing_local_replaces_of_one_etag_have_one_winner(tmp_path: Path):
    """Read, compare and write are one step under the store's write lock: of writers that all read the same
    record, one replaces it and the rest are refused, however their steps interleave. An ``flock`` belongs to an
    open file, so threads race here as processes would."""
    store = _local_store(tmp_path / "out")
    now = datetime.now(timezone.utc)
    read = store.create(_record(RUN_A, now).dump())
    racers = 8
    start = threading.Barrier(racers)
    answers: list[str] = []

    def race(epoch: int) -> None:
        rivals = _local_store(tmp_path / "out")  # a store of its own, as another process has
        start.wait()
        try:
            rivals.replace(_record(RUN_B, now, epoch=epoch).dump(), read)
            answers.append(f"replaced {epoch}")
        except Conflict:
            answers.append("refused")

    threads = [threading.Thread(target=race, args=(epoch,)) for epoch in range(2, 2 + racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [answer for answer in answers if answer.startswith("replaced")]
    assert len(winners) == 1 and len(answers) == racers, answers
    seen = store.read()
    assert seen is not None and f"replaced {seen.record.epoch}" == winners[0]


def test_a_local_record_expires_at_its_expires_at_by_the_clock_given(tmp_path: Path):
    clock = FakeClock(now=datetime(2026, 12, 4, 5, 0, tzinfo=timezone.utc).timestamp())
    store = _local_store(tmp_path / "out", clock)
    store.create(_record(RUN_A, datetime(2026, 12, 4, 5, 0, 10, tzinfo=timezone.utc), ttl_s=30.0).dump())
    seen = store.read()
    assert seen is not None and seen.remaining_s == 10.0  # its ttl plays no part: written 20 s ago, by its dates
    clock.advance(11.0)
    seen = store.read()
    assert seen is not None and seen.remaining_s == -1.0


def test_only_local_and_s3_outputs_hold_a_lease():
    with pytest.raises(ValueError, match="only local paths and s3:// hold one"):
        store_for(location("memory://out"))


def test_a_second_run_on_local_disk_is_refused_by_the_lock_and_told_the_holder(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    first = RunLease(out, RUN_A, ttl_s=60).acquire()
    assert not _local_store(tmp_path / "out").lock(), "the holder keeps the lock"
    with pytest.raises(LeaseHeld) as caught:
        RunLease(out, RUN_B, ttl_s=60).acquire()
    assert caught.value.holder is not None and caught.value.holder == _stored(out)
    first.release()
    released = _stored(out)
    assert released is not None and released.released, "written back released, so the next run's epoch is 2"
    assert _local_store(tmp_path / "out").lock(), "released with the lease"


def test_the_fence_travels_and_fails_once_released(tmp_path: Path):
    lease = RunLease(location(str(tmp_path / "out")), RUN_A, ttl_s=60).acquire()
    fence = pickle.loads(pickle.dumps(lease.fence))
    assert fence.store is None and fence == lease.fence  # a task rebuilds the store from the output's location
    fence.check()
    lease.release()
    with pytest.raises(LeaseLost, match="was released"):
        fence.check()
    with pytest.raises(LeaseLost, match="released"):
        lease.check()


_RACER = """
import pathlib, sys, time
from common.storage import location
from jobs.records.lease import LeaseHeld, RunLease
out, run_id, ready, go = sys.argv[1:]
lease = RunLease(location(out), run_id, ttl_s=60)
pathlib.Path(ready).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.002)
try:
    lease.acquire()
except LeaseHeld:
    print("held")
else:
    print("acquired")
"""


def test_racing_processes_on_local_disk_have_one_winner(tmp_path: Path):
    out = tmp_path / "out"
    go = tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(out), f"run-{i}", str(tmp_path / f"ready-{i}"), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    try:
        assert wait_until(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(8)), 60)
    finally:
        go.touch()  # never left waiting: a racer not ready in time would spin on until killed
    answers = [racer.communicate(timeout=30)[0].strip() for racer in racers]
    assert sorted(answers) == ["acquired"] + ["held"] * 7
    held = _stored(location(str(out)))
    assert held is not None and held.run_id == f"run-{answers.index('acquired')}"


def test_an_expired_lease_of_a_dead_holder_is_taken_over(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    dead = _record(RUN_A, datetime.now(timezone.utc) - timedelta(hours=1), epoch=3)
    write_atomic(out.child(layout.lease()).path, dead.model_dump_json().encode())
    lease = RunLease(out, RUN_B, ttl_s=60).acquire()
    held = _stored(out)
    assert held is not None and (held.run_id, held.epoch, held.nonce) == (RUN_B, 4, lease.nonce)
    lease.release()


_KILLED = """
import os, sys
from common.storage import location
from jobs.records.lease import RunLease
RunLease(location(sys.argv[1]), sys.argv[2], ttl_s=60.0, local_ray=sys.argv[3] == "local").acquire()
os.kill(os.getpid(), 9)
"""


def _killed_holder(out: Location, ray: str) -> int:
    """A process that takes the lease on ``out`` (saying it runs a ``local`` Ray or a ``cluster``'s) and is killed
    holding it: its pid."""
    killed = subprocess.Popen([sys.executable, "-c", _KILLED, out.path, RUN_A, ray], cwd=REPO)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    return killed.pid


def test_a_killed_holder_that_ran_its_own_ray_is_taken_over_at_once(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    pid = _killed_holder(out, "local")
    lease = RunLease(out, RUN_B, ttl_s=60.0).acquire()  # the real liveness check: the process is gone
    assert lease.taken_from is not None and (lease.taken_from.run_id, lease.taken_from.pid) == (RUN_A, pid)
    held = _stored(out)
    assert held is not None and (held.run_id, held.epoch) == (RUN_B, 2)
    lease.release()


def test_a_killed_holder_keeps_the_output_until_its_lease_expires(tmp_path: Path):
    """Its Ray a cluster's, whose tasks may outlive it."""
    out = location(str(tmp_path / "out"))
    killed_pid = _killed_holder(out, "cluster")
    clock = FakeClock(now=time.time())
    lease = RunLease(out, RUN_B, ttl_s=60.0, clock=clock)
    with pytest.raises(LeaseHeld, match=f"run {RUN_A} .*pid") as caught:
        lease.acquire()  # its lock went with the process, its lease did not
    holder = caught.value.holder
    assert holder is not None and holder.pid == killed_pid
    clock.advance(61.0)
    lease.acquire()
    held = _stored(out)
    assert held is not None and (held.run_id, held.epoch) == (RUN_B, 2)
    assert clock.now() >= holder.expires_s()
    lease.release()


def test_on_s3_writes_are_conditional_and_a_records_age_is_the_stores(s3_endpoint: str, s3_bucket: str):
    options = {**s3_storage_options(s3_endpoint), "skip_instance_cache": True}
    out = location(f"s3://{s3_bucket}/out", options)
    store = store_for(out)
    assert isinstance(store, S3LeaseStore)
    raw = s3_client(s3_endpoint)
    key = f"out/{layout.lease()}"
    years_ago = datetime(2020, 1, 1, tzinfo=timezone.utc)  # the record's dates: no clock reads them on S3
    created = store.create(_record(RUN_A, years_ago, ttl_s=5.0).dump())
    with pytest.raises(Conflict):  # If-None-Match: *
        store.create(_record(RUN_B, years_ago).dump())
    seen = store.read()
    assert seen is not None and seen.etag == created and seen.record.run_id == RUN_A
    assert 3.0 <= seen.remaining_s <= 5.0  # just written, by the store's clock: whole seconds, so up to 2 s off

    renewed = store.replace(_record(RUN_A, years_ago, ttl_s=6.0).dump(), created)
    assert renewed != created
    with pytest.raises(Conflict):  # If-Match: a stale etag
        store.replace(_record(RUN_B, years_ago).dump(), created)
    assert raw.get_object(Bucket=s3_bucket, Key=key)["ETag"] == renewed
    raw.delete_object(Bucket=s3_bucket, Key=key)  # by hand: the job never deletes it
    assert store.read() is None
    with pytest.raises(FileNotFoundError):
        store.replace(b"{}", renewed)

    lease = RunLease(location(f"s3://{s3_bucket}/out", options), RUN_B, ttl_s=60).acquire()
    fence = pickle.loads(pickle.dumps(lease.fence))  # its store rebuilt, client and all, from the location
    fence.check()
    lease.release()
    with pytest.raises(LeaseLost, match="was released"):
        fence.check()
    after = RunLease(location(f"s3://{s3_bucket}/out", options), RUN_A, ttl_s=60).acquire()
    assert after.fence.epoch == 2, "released: taken over at once, whatever the store's clock says of its age"
    after.release()


def test_on_s3_each_request_is_one_http_request_per_try_and_ends_by_its_deadline(
    flaky_proxy: FlakyProxy, s3_bucket: str
):
    """The lease's requests have one retry layer, under the lease's write deadline: botocore sends each try once
    (a connection reset is not sent again), and no try starts that could end past the deadline (a fake clock
    times the waits)."""
    clock = FakeClock()
    start = clock.monotonic()
    store = store_for(location(f"s3://{s3_bucket}/out", s3_storage_options(flaky_proxy.url)), clock, deadline_s=3.0)
    assert isinstance(store, S3LeaseStore) and store.deadline.try_s == 1.0
    flaky_proxy.drop_every = 1  # every request loses its connection
    with pytest.raises(ConnectionError):  # an OSError, which the heartbeat takes for a fault and tries again
        store.create(_record(RUN_A, datetime(2026, 12, 4, tzinfo=timezone.utc)).dump())
    tries = len(clock.slept) + 1
    assert tries > 1 and flaky_proxy.requests == tries  # one HTTP request per try, every try
    assert clock.monotonic() - start <= 2.0  # the last try began with a whole one left before the deadline
    flaky_proxy.drop_every = 0
    assert store.read() is None and flaky_proxy.requests == tries + 1


def test_on_s3_a_gone_holders_lease_is_taken_over_at_once_under_if_match(s3_endpoint: str, s3_bucket: str):
    """The takeover's replace, and the replace at a tag the lease never had that proves the store honours
    ``If-Match``, on a real S3 API. The holder: this host's, with a Ray of its own, under a pid a later process
    took (this one, started long after it)."""
    options = {**s3_storage_options(s3_endpoint), "skip_instance_cache": True}
    here = this_process()
    gone = _record(RUN_A, datetime.now(timezone.utc) + timedelta(minutes=3), epoch=5).model_copy(
        update={**here, "pid_started": here["pid_started"] - 3600, "local_ray": True}
    )
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=f"gone/{layout.lease()}", Body=gone.dump())
    lease = RunLease(location(f"s3://{s3_bucket}/gone", options), RUN_B, ttl_s=60).acquire()
    assert lease.taken_from == gone
    assert (lease.fence.run_id, lease.fence.epoch) == (RUN_B, 6)
    lease.fence.check()
    lease.release()
