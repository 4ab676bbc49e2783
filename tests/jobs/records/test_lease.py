"""The run lease on an output, on local disk and on a real S3 API (moto's server): one run at a time holds it,
racing runs get exactly one winner, a dead holder's lease is taken over once expired, and a holder taken over
stops."""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest

from common.storage import Location, location
from jobs.records.lease import Fence, LeaseHeld, LeaseLost, LeaseRecord, RunLease
from schemas import layout
from tests.support.s3 import s3_storage_options
from workers.files import write_atomic

REPO = Path(__file__).resolve().parents[3]
RUN_A = "20261204T050000Z-aaaaaa"
RUN_B = "20261204T050100Z-bbbbbb"


@pytest.fixture(params=["local", "s3"])
def open_out(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Location]:
    """Opens one fresh OUT, on local disk or S3, with a filesystem of its own each time, as another run would."""
    if request.param == "local":
        return lambda: location(str(tmp_path / "out"))
    options = {**s3_storage_options(request.getfixturevalue("s3_endpoint")), "skip_instance_cache": True}
    uri = f"s3://{request.getfixturevalue('s3_bucket')}/out"
    return lambda: location(uri, options)


def _stored(out: Location) -> LeaseRecord | None:
    try:
        return LeaseRecord.model_validate_json(out.child(layout.lease()).read_bytes())
    except FileNotFoundError:
        return None


def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _acquired_within(lease: RunLease, timeout_s: float) -> bool:
    def attempt() -> bool:
        try:
            lease.acquire()
        except LeaseHeld:
            return False
        return True

    return _until(attempt, timeout_s)


def test_a_second_run_is_refused_until_the_first_releases(open_out: Callable[[], Location]):
    first = RunLease(open_out(), RUN_A, ttl_s=60).acquire()
    second = RunLease(open_out(), RUN_B, ttl_s=60)
    with pytest.raises(LeaseHeld) as caught:
        second.acquire()
    held = _stored(open_out())
    assert held is not None and caught.value.holder == held
    assert (held.run_id, held.epoch, held.host, held.pid) == (RUN_A, 1, socket.gethostname(), os.getpid())
    message = str(caught.value)
    assert message == (
        f"output {first.out.uri} is in use by run {RUN_A} (host {held.host}, pid {held.pid}) "
        f"since {held.acquired_at}, lease expires {held.expires_at}"
    )
    assert str(pickle.loads(pickle.dumps(caught.value))) == message

    first.release()
    assert _stored(open_out()) is None
    second.acquire()
    assert (second.fence.run_id, second.fence.epoch) == (RUN_B, 1)  # a fresh lease: the released one is gone
    first.release()  # again: leaves the second run's lease alone
    second.check()
    second.release()
    assert _stored(open_out()) is None


def test_acquiring_again_finds_its_own_lease(open_out: Callable[[], Location]):
    # how a create retried after its answer was lost behaves: the store refuses it, the record read back is ours
    lease = RunLease(open_out(), RUN_A, ttl_s=60).acquire()
    assert lease.acquire() is lease
    assert lease.fence == Fence(lease.out, RUN_A, 1, lease.nonce, lease.margin_s)
    lease.check()
    with pytest.raises(LeaseHeld):
        RunLease(open_out(), RUN_A, ttl_s=60).acquire()  # the same run id started twice is still two runs
    lease.release()


def test_a_resumed_run_holds_the_lease_under_its_own_id(open_out: Callable[[], Location]):
    lease = RunLease(open_out(), RUN_A, ttl_s=60).acquire()
    lease.announce(RUN_B)
    held = _stored(open_out())
    assert held is not None and (held.run_id, held.epoch, held.nonce) == (RUN_B, 1, lease.nonce)
    assert lease.fence.run_id == RUN_B
    lease.check()
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_B} "):
        RunLease(open_out(), RUN_A, ttl_s=60).acquire()
    lease.release()


def test_the_fence_travels_and_fails_once_released(open_out: Callable[[], Location]):
    lease = RunLease(open_out(), RUN_A, ttl_s=60).acquire()
    fence = pickle.loads(pickle.dumps(lease.fence))
    fence.check()
    lease.release()
    with pytest.raises(LeaseLost, match="is gone"):
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
    assert _until(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(8)), 30)
    go.touch()
    answers = [racer.communicate(timeout=30)[0].strip() for racer in racers]
    assert sorted(answers) == ["acquired"] + ["held"] * 7
    held = _stored(location(str(out)))
    assert held is not None and held.run_id == f"run-{answers.index('acquired')}"


def test_racing_runs_on_s3_have_one_winner(s3_endpoint: str, s3_bucket: str):
    options = {**s3_storage_options(s3_endpoint), "skip_instance_cache": True}
    leases = [RunLease(location(f"s3://{s3_bucket}/out", options), f"run-{i}", ttl_s=60) for i in range(8)]
    for lease in leases:  # each client connected before the start, so that the requests meet
        lease.out.fs.exists(f"{s3_bucket}/warm-up")
    start = threading.Barrier(len(leases))
    answers: dict[str, str] = {}

    def race(lease: RunLease) -> None:
        start.wait()
        try:
            lease.acquire()
            answers[lease.run_id] = "acquired"
        except LeaseHeld:
            answers[lease.run_id] = "held"

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [run_id for run_id, answer in answers.items() if answer == "acquired"]
    assert len(winners) == 1 and len(answers) == len(leases)
    held = _stored(leases[0].out)
    assert held is not None and held.run_id == winners[0]


def test_an_expired_lease_of_a_dead_holder_is_taken_over(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    an_hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    dead = LeaseRecord(
        run_id=RUN_A,
        host="gone-host",
        pid=2**22 + 1,
        epoch=3,
        acquired_at=f"{an_hour_ago - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}",
        renewed_at=f"{an_hour_ago - timedelta(minutes=3):%Y-%m-%dT%H:%M:%SZ}",
        expires_at=f"{an_hour_ago:%Y-%m-%dT%H:%M:%SZ}",
        ttl_s=180.0,
        nonce="0123456789abcdef",
    )
    write_atomic(out.child(layout.lease()).path, dead.model_dump_json().encode())
    lease = RunLease(out, RUN_B, ttl_s=60).acquire()
    held = _stored(out)
    assert held is not None and (held.run_id, held.epoch, held.nonce) == (RUN_B, 4, lease.nonce)
    lease.release()


_KILLED = """
import os, sys
from common.storage import location
from jobs.records.lease import RunLease
RunLease(location(sys.argv[1]), sys.argv[2], ttl_s=4.0).acquire()
os.kill(os.getpid(), 9)
"""


def test_a_killed_holder_keeps_the_output_until_its_lease_expires(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    killed = subprocess.Popen([sys.executable, "-c", _KILLED, out.path, RUN_A], cwd=REPO)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    lease = RunLease(out, RUN_B, ttl_s=4.0)
    with pytest.raises(LeaseHeld, match=f"run {RUN_A} .*pid") as caught:
        lease.acquire()  # its lock went with the process, its lease did not
    assert caught.value.holder is not None and caught.value.holder.pid == killed.pid
    assert _acquired_within(lease, timeout_s=12.0)
    held = _stored(out)
    assert held is not None and (held.run_id, held.epoch) == (RUN_B, 2)
    assert datetime.now(timezone.utc) >= datetime.fromisoformat(caught.value.holder.expires_at)
    lease.release()


def test_a_holder_that_could_not_renew_stops_and_leaves_its_successor_alone(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    lease = RunLease(out, RUN_A, ttl_s=1.0).acquire()  # no heartbeat: as if the holder had stalled
    time.sleep(1.1)
    with pytest.raises(LeaseLost, match="not renewed"):
        lease.check()
    # meanwhile a run on another host sharing this folder (where the lock does not reach) took it over
    successor = LeaseRecord.model_validate_json(out.child(layout.lease()).read_bytes()).model_copy(
        update={
            "run_id": RUN_B,
            "epoch": 2,
            "nonce": "fedcba9876543210",
            "pid": 1,
            "expires_at": f"{datetime.now(timezone.utc) + timedelta(seconds=60):%Y-%m-%dT%H:%M:%SZ}",
        }
    )
    write_atomic(out.child(layout.lease()).path, successor.model_dump_json().encode())
    with pytest.raises(LeaseLost, match=f"taken over by run {RUN_B}"):
        lease.fence.check()
    with pytest.raises(LeaseLost, match=f"renewal refused: .* taken over by run {RUN_B}"):
        lease.announce("20261204T040000Z-cccccc")
    lease.release()
    assert _stored(out) == successor


def test_on_s3_an_expired_lease_is_taken_over_and_its_holder_learns_it(s3_endpoint: str, s3_bucket: str):
    options = {**s3_storage_options(s3_endpoint), "skip_instance_cache": True}
    first = RunLease(location(f"s3://{s3_bucket}/out", options), RUN_A, ttl_s=3.0, clock_skew_s=0.0).acquire()
    second = RunLease(location(f"s3://{s3_bucket}/out", options), RUN_B, ttl_s=3.0, clock_skew_s=0.0)
    with pytest.raises(LeaseHeld):
        second.acquire()
    assert _acquired_within(second, timeout_s=12.0)  # once the store's clock says the first has expired
    second.start_heartbeat()
    assert second.fence.epoch == 2

    first.start_heartbeat()  # the stalled holder wakes up: its next renewal is refused
    assert _until(lambda: first.lost is not None, timeout_s=4.0)
    assert first.lost == f"renewal refused: the lease on {first.out.uri} was taken over by run {RUN_B}"
    with pytest.raises(LeaseLost, match="renewal refused"):
        first.check()
    with pytest.raises(LeaseLost, match=f"taken over by run {RUN_B}"):
        first.fence.check()
    first.release()
    second.check()  # untouched by the first's release
    second.release()
    assert _stored(second.out) is None


def test_on_s3_a_renewed_lease_outlives_its_ttl(s3_endpoint: str, s3_bucket: str):
    options = {**s3_storage_options(s3_endpoint), "skip_instance_cache": True}
    with RunLease(location(f"s3://{s3_bucket}/out", options), RUN_A, ttl_s=3.0, clock_skew_s=0.0) as lease:
        time.sleep(6.5)  # past twice the ttl, by any clock
        with pytest.raises(LeaseHeld):
            RunLease(location(f"s3://{s3_bucket}/out", options), RUN_B, ttl_s=3.0, clock_skew_s=0.0).acquire()
        lease.check()
        assert lease.lost is None
    assert _stored(lease.out) is None
