"""The run lease's protocol, on an in-memory store with S3's semantics and a fake clock, so that expiry, takeover
and the heartbeat play out in milliseconds: one run at a time holds the lease, racing runs get exactly one winner,
an expired lease is taken over one epoch higher, or at once where its holder is known gone, and a holder that lost
it stops; a store that ignores conditional writes is refused. The stores themselves are tested in
``test_lease_stores.py``."""

from __future__ import annotations

import os
import pickle
import socket
import threading
from pathlib import Path
from typing import Callable

import pytest

from common.errors import UsageError
from common.storage import Location, location
from jobs.records.fence import Fence
from jobs.records.lease import LOCK_HOLDER_WAIT_S, LeaseHeld, LeaseLost, RunLease
from jobs.records.lease_errors import StoreNotConditional
from jobs.records.lease_holder import HOLDER_ENV, WORKERS_EXIT_WAIT_S, WORKERS_GRACE_S, WORKERS_POLL_S, took_over
from jobs.records.lease_record import Conflict, LeaseRecord
from tests.support.fake_clock import FakeClock
from tests.support.memory_lease_store import MemoryLeaseStore, UnconditionalLeaseStore

RUN_A = "20261204T050000Z-aaaaaa"
RUN_B = "20261204T050100Z-bbbbbb"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryLeaseStore:
    return MemoryLeaseStore(clock)


@pytest.fixture
def out(tmp_path: Path) -> Location:
    """What the lease names in its messages; its store is the in-memory one, so nothing is written here."""
    return location(str(tmp_path / "out"))


@pytest.fixture
def lease_on(out: Location, clock: FakeClock, store: MemoryLeaseStore) -> Callable[..., RunLease]:
    """A new run's lease on the shared store and clock, as another run would open it."""
    return lambda run_id, ttl_s=60.0, **options: RunLease(out, run_id, ttl_s, clock=clock, store=store, **options)


def _heartbeat_ends(lease: RunLease) -> None:
    """Until ``lease``'s heartbeat thread has ended, as it does once the lease is lost; the timeout only guards
    against a hang."""
    beating = [thread for thread in threading.enumerate() if thread.name == f"lease-{lease.run_id}"]
    for thread in beating:
        thread.join(timeout=10.0)
    assert beating and not any(thread.is_alive() for thread in beating)


def _assert_released(store: MemoryLeaseStore, run_id: str) -> None:
    """The lease is written back released by ``run_id``, not deleted: the next run takes it over one epoch up."""
    held = store.stored()
    assert held is not None and held.released and held.run_id == run_id


def test_a_second_run_is_refused_until_the_first_releases(lease_on, store: MemoryLeaseStore):
    first = lease_on(RUN_A).acquire()
    second = lease_on(RUN_B)
    with pytest.raises(LeaseHeld) as caught:
        second.acquire()
    held = store.stored()
    assert held is not None and caught.value.holder == held
    assert (held.run_id, held.epoch, held.host, held.pid) == (RUN_A, 1, socket.gethostname(), os.getpid())
    message = str(caught.value)
    assert message == (
        f"output {first.out.uri} is in use by run {RUN_A} (host {held.host}, pid {held.pid}) "
        f"since {held.acquired_at}, lease expires {held.expires_at}"
    )
    assert str(pickle.loads(pickle.dumps(caught.value))) == message

    first.release()
    released = store.stored()
    assert released is not None and released.released and (released.run_id, released.nonce) == (RUN_A, first.nonce)
    assert "not yet named" in str(LeaseHeld(first.out.uri, released))  # a released record names no holder
    second.acquire()  # at once: released is free, though the store's clock says the record was just written
    assert (second.fence.run_id, second.fence.epoch) == (RUN_B, 2)  # kept, not deleted: epochs only grow
    first.release()  # again: leaves the second run's lease alone
    second.check()
    second.release()
    last = store.stored()
    assert last is not None and last.released and (last.run_id, last.epoch) == (RUN_B, 2)


def test_acquiring_again_finds_its_own_lease(lease_on):
    # how a create retried after its answer was lost behaves: the store refuses it, the record read back is ours
    lease = lease_on(RUN_A).acquire()
    assert lease.acquire() is lease
    assert lease.fence == Fence(
        lease.out, RUN_A, 1, lease.nonce, lease.margin_s, write_deadline_s=lease.write_deadline_s
    )
    lease.check()
    with pytest.raises(LeaseHeld):
        lease_on(RUN_A).acquire()  # the same run id started twice is still two runs
    lease.release()


def test_a_resumed_run_holds_the_lease_under_its_own_id(lease_on, store: MemoryLeaseStore):
    lease = lease_on(RUN_A).acquire()
    lease.announce(RUN_B)
    held = store.stored()
    assert held is not None and (held.run_id, held.epoch, held.nonce) == (RUN_B, 1, lease.nonce)
    assert lease.fence.run_id == RUN_B
    lease.check()
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_B} "):
        lease_on(RUN_A).acquire()
    lease.release()


def test_an_announced_epoch_moves_past_the_outputs_records(lease_on, store: MemoryLeaseStore):
    """A lease record deleted by hand is created afresh at epoch 1; the output's epoch records remember more, and
    the holder's epoch moves past them before it writes anything, so that epochs only grow per output."""
    lease = lease_on(RUN_A).acquire()
    assert lease.fence.epoch == 1
    lease.announce(RUN_A, past_epoch=7)
    held = store.stored()
    assert lease.fence.epoch == 8 and held is not None and held.epoch == 8
    lease.announce(RUN_B, past_epoch=3)  # never back
    assert lease.fence.epoch == 8
    lease.check()
    lease.release()


def test_racing_runs_have_one_winner(lease_on, store: MemoryLeaseStore):
    leases = [lease_on(f"run-{i}") for i in range(8)]
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
    held = store.stored()
    assert held is not None and held.run_id == winners[0]


def test_a_run_refused_the_lock_names_the_holder_once_it_has_written_its_record(
    lease_on, clock: FakeClock, store: MemoryLeaseStore
):
    store.locked_elsewhere = True  # another process of this host holds the lock, its record not yet written
    started = clock.monotonic()
    with pytest.raises(LeaseHeld, match="not yet named in its lease") as caught:
        lease_on(RUN_B).acquire()
    assert caught.value.holder is None and clock.monotonic() - started >= LOCK_HOLDER_WAIT_S

    store.locked_elsewhere = False
    holder = lease_on(RUN_A).acquire()
    store.locked_elsewhere = True
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_A} ") as caught:
        lease_on(RUN_B).acquire()
    assert caught.value.holder == store.stored()
    holder.release()


def test_an_expired_lease_is_taken_over_and_its_holder_learns_it(lease_on, clock: FakeClock, store: MemoryLeaseStore):
    first = lease_on(RUN_A, ttl_s=3.0, clock_skew_s=0.0).acquire()  # no heartbeat yet: as if it had stalled
    second = lease_on(RUN_B, ttl_s=3.0, clock_skew_s=0.0)
    with pytest.raises(LeaseHeld):
        second.acquire()
    clock.advance(2.9)
    with pytest.raises(LeaseHeld):
        second.acquire()
    clock.advance(0.2)  # past the ttl, by the store's clock
    second.acquire()
    held = store.stored()
    assert held is not None and (held.run_id, held.epoch, held.nonce) == (RUN_B, 2, second.nonce)
    assert second.fence.epoch == 2

    first.start_heartbeat()  # the stalled holder wakes up: its next renewal is refused
    clock.until_waits(1)
    clock.advance(1.0)
    _heartbeat_ends(first)
    assert first.lost == f"renewal refused: the lease on {first.out.uri} was taken over by run {RUN_B}"
    with pytest.raises(LeaseLost, match="renewal refused"):
        first.check()
    with pytest.raises(LeaseLost, match=f"taken over by run {RUN_B}"):
        first.fence.check()
    first.release()
    second.check()  # untouched by the first's release
    second.release()
    _assert_released(store, RUN_B)


def test_a_holder_that_could_not_renew_stops_and_leaves_its_successor_alone(
    lease_on, clock: FakeClock, store: MemoryLeaseStore
):
    lease = lease_on(RUN_A, ttl_s=1.0).acquire()  # no heartbeat: as if the holder had stalled
    clock.advance(1.1)
    with pytest.raises(LeaseLost, match="not renewed"):
        lease.check()
    # meanwhile a run on another host took it over
    held = store.stored()
    assert held is not None
    successor = held.model_copy(update={"run_id": RUN_B, "epoch": 2, "nonce": "fedcba9876543210", "pid": 1})
    store.put(successor)
    with pytest.raises(LeaseLost, match=f"taken over by run {RUN_B}"):
        lease.fence.check()
    with pytest.raises(LeaseLost, match=f"renewal refused: .* taken over by run {RUN_B}"):
        lease.announce("20261204T040000Z-cccccc")
    lease.release()
    assert store.stored() == successor


def test_a_lease_about_to_expire_no_longer_counts_as_held(lease_on, clock: FakeClock):
    lease = lease_on(RUN_A, ttl_s=30.0).acquire()  # margin 2 s: given up 28 s after its last renewal
    clock.advance(27.5)
    lease.check()
    clock.advance(0.9)
    with pytest.raises(LeaseLost, match="is expiring unrenewed"):
        lease.fence.check()  # what a task sees: the store says 1.6 s are left, less than the margin
    with pytest.raises(LeaseLost, match=r"was not renewed for 28 s \(ttl 30 s\)"):
        lease.check()
    lease.release()


def test_a_holder_the_store_does_not_answer_loses_the_lease_before_it_expires(
    lease_on, clock: FakeClock, store: MemoryLeaseStore
):
    lease = lease_on(RUN_A, ttl_s=30.0).acquire()
    lease.start_heartbeat()
    clock.until_waits(1)
    store.down = True
    for beats in (1, 2):  # at 10 s and 20 s: refused, but time is left
        clock.advance(10.0)
        clock.until_waits(beats + 1)
        assert lease.lost is None
    clock.advance(10.0)  # at 30 s: past the ttl less the margin, so another run may take over any moment
    _heartbeat_ends(lease)
    assert lease.lost == f"could not renew the lease on {lease.out.uri} for 30 s (ttl 30 s)"
    store.down = False
    with pytest.raises(LeaseLost, match="could not renew"):
        lease.check()
    lease.release()


def test_a_renewal_whose_answer_was_lost_finds_its_own_record(lease_on, store: MemoryLeaseStore):
    lease = lease_on(RUN_A).acquire()
    store.lose_next_answer = True  # the replace lands; its retry is refused, its record being there already
    lease.announce(RUN_B)
    held = store.stored()
    assert held is not None and (held.run_id, held.nonce) == (RUN_B, lease.nonce)
    assert lease.lost is None
    lease.check()
    lease.announce(RUN_A)  # renews from the record read back: its etag is the current one
    held = store.stored()
    assert held is not None and held.run_id == RUN_A
    lease.release()
    _assert_released(store, RUN_A)


def test_the_heartbeat_keeps_the_lease_past_its_ttl(lease_on, clock: FakeClock, store: MemoryLeaseStore):
    with lease_on(RUN_A, ttl_s=3.0, clock_skew_s=0.0) as lease:
        clock.until_waits(1)
        for beats in range(1, 8):  # past twice the ttl
            clock.advance(1.0)
            clock.until_waits(beats + 1)  # renewed, and waiting for the next beat
        assert store.writes == 8
        with pytest.raises(LeaseHeld):
            lease_on(RUN_B, ttl_s=3.0, clock_skew_s=0.0).acquire()
        lease.check()
        assert lease.lost is None
    _assert_released(store, RUN_A)


def test_a_failed_renewal_is_retried_sooner_than_the_next_beat(lease_on, clock: FakeClock, store: MemoryLeaseStore):
    lease = lease_on(RUN_A, ttl_s=30.0).acquire()
    lease.start_heartbeat()
    clock.until_waits(1)
    store.down = True
    clock.advance(10.0)  # the beat at 10 s fails
    clock.until_waits(2)
    store.down = False
    writes = store.writes
    clock.advance(3.4)  # a ninth of the ttl later, not a third
    clock.until_waits(3)
    assert store.writes == writes + 1 and lease.lost is None
    clock.advance(9.9)  # the next beat a third of the ttl after the renewal that succeeded
    assert store.writes == writes + 1
    clock.advance(0.1)
    clock.until_waits(4)
    assert store.writes == writes + 2
    lease.release()


def test_a_heartbeat_that_dies_loses_the_lease_and_says_why(
    lease_on, clock: FakeClock, store: MemoryLeaseStore, monkeypatch
):
    """What a store answering without a ``Date`` header did: a ``KeyError`` in the renewal thread, which ended
    in silence while the run went on writing."""
    lease = lease_on(RUN_A, ttl_s=30.0).acquire()
    lease.start_heartbeat()
    clock.until_waits(1)
    monkeypatch.setattr(store, "replace", lambda data, etag: {}["date"])
    clock.advance(10.0)
    _heartbeat_ends(lease)
    assert lease.lost == f"the heartbeat of the lease on {lease.out.uri} died: KeyError: 'date'"
    with pytest.raises(LeaseLost, match="heartbeat .* died"):
        lease.check()
    monkeypatch.undo()
    lease.release()


def test_a_heartbeat_stuck_in_the_store_is_noticed_once_the_lease_may_be_taken_over(
    lease_on, clock: FakeClock, store: MemoryLeaseStore, monkeypatch
):
    """A renewal that never returns (stacked retries on a store that hangs) stops nobody by itself: ``lost``
    tells the run anyway, once no renewal has succeeded for the ttl less the margin."""
    lease = lease_on(RUN_A, ttl_s=30.0).acquire()  # margin 2 s
    lease.start_heartbeat()
    clock.until_waits(1)
    entered, answered = threading.Event(), threading.Event()

    def hang(data: bytes, etag: str) -> str:
        entered.set()
        answered.wait(10.0)
        raise ConnectionError("the store timed out at last")

    monkeypatch.setattr(store, "replace", hang)
    clock.advance(10.0)
    assert entered.wait(10.0), "the heartbeat never tried to renew"
    clock.advance(17.9)  # 27.9 s since the last renewal
    assert lease.lost is None
    clock.advance(0.2)
    assert lease.lost == f"the lease on {lease.out.uri} was not renewed for 28 s (ttl 30 s)"
    with pytest.raises(LeaseLost, match="not renewed for 28 s"):
        lease.check()
    answered.set()
    _heartbeat_ends(lease)  # the failed renewal finds the lease lost: the heartbeat stops
    lease.release()


class _Processes:
    """The process table a run is shown: whether the holder's process is ``alive``, and its Ray's workers, one list
    per look (the last one repeated); remembers what it was asked."""

    def __init__(self, alive: bool, *workers: list[int]) -> None:
        self._alive = alive
        self._workers = list(workers) or [[]]
        self.asked: list[object] = []

    def alive(self, pid: int, started: float | None) -> bool:
        self.asked.append((pid, started))
        return self._alive

    def workers(self, nonce: str) -> list[int]:
        self.asked.append(nonce)
        return self._workers.pop(0) if len(self._workers) > 1 else self._workers[0]

    def end(self, nonce: str) -> None:
        self.asked.append(("end", nonce))


def test_a_killed_run_that_ran_its_own_ray_on_this_host_is_taken_over_at_once(
    lease_on, clock: FakeClock, store: MemoryLeaseStore
):
    killed = lease_on(RUN_A, local_ray=True).acquire()  # never released: as if killed with its process group
    assert os.environ[HOLDER_ENV] == killed.nonce  # the mark its Ray's workers inherit
    held = store.stored()
    assert held is not None and held.local_ray and held.pid_started is not None and held.pid_scope
    gone = _Processes(False)
    started = clock.monotonic()
    successor = lease_on(RUN_B, processes=gone).acquire()  # the lease has its whole ttl left: no wait
    assert gone.asked == [(held.pid, held.pid_started), held.nonce] and clock.monotonic() == started
    assert successor.taken_from == held
    assert took_over(held) == f"took over the output from run {RUN_A}: its process {held.pid} on this host is gone"
    now = store.stored()
    assert now is not None and (now.run_id, now.epoch, now.nonce) == (RUN_B, 2, successor.nonce)
    with pytest.raises(LeaseLost, match=f"taken over by run {RUN_B}"):
        killed.fence.check()
    successor.release()


def test_a_killed_runs_ray_workers_are_waited_for_a_moment(lease_on, clock: FakeClock, store: MemoryLeaseStore):
    killed = lease_on(RUN_A, local_ray=True).acquire()
    started = clock.monotonic()
    lingering = _Processes(False, [4242, 4243], [4242], [])  # ending a moment after their driver
    successor = lease_on(RUN_B, local_ray=True, processes=lingering).acquire()
    assert successor.taken_from is not None and clock.monotonic() - started == pytest.approx(2 * WORKERS_POLL_S)

    assert ("end", killed.nonce) not in lingering.asked, "workers that end on their own within the grace are let be"

    started = clock.monotonic()
    unkillable = _Processes(False, [4242])
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_B} "):  # workers that outlast being ended
        lease_on(RUN_A, processes=unkillable).acquire()
    assert clock.monotonic() - started >= WORKERS_EXIT_WAIT_S
    assert unkillable.asked.count(("end", successor.nonce)) == 1, "ended once, after the grace"


def test_a_killed_runs_ray_workers_that_linger_are_ended_after_the_grace(
    lease_on, clock: FakeClock, store: MemoryLeaseStore
):
    killed = lease_on(RUN_A, local_ray=True).acquire()
    started = clock.monotonic()
    polls = int(WORKERS_GRACE_S / WORKERS_POLL_S) + 3
    lingering = _Processes(False, *[[4242]] * polls, [])  # gone only once ended
    successor = lease_on(RUN_B, processes=lingering).acquire()
    assert successor.taken_from is not None and lingering.asked.count(("end", killed.nonce)) == 1
    assert WORKERS_GRACE_S <= clock.monotonic() - started < WORKERS_EXIT_WAIT_S


@pytest.mark.parametrize(
    "alive, local_ray, where",
    [
        pytest.param(True, True, {}, id="its-process-alive"),
        pytest.param(False, False, {}, id="a-cluster-ray"),
        pytest.param(False, True, {"host": "another-host"}, id="another-host"),
        pytest.param(False, True, {"pid_scope": "another-boot pid:[1]"}, id="another-pid-namespace"),
    ],
)
def test_a_holder_that_may_still_write_keeps_the_output_until_its_lease_expires(
    lease_on, store: MemoryLeaseStore, alive: bool, local_ray: bool, where: dict[str, str]
):
    lease_on(RUN_A, local_ray=local_ray).acquire()
    held = store.stored()
    assert held is not None
    store.put(held.model_copy(update=where))
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_A} ") as caught:
        lease_on(RUN_B, processes=_Processes(alive)).acquire()
    assert caught.value.holder == store.stored()


def test_a_store_that_ignores_conditional_writes_is_refused(clock: FakeClock, out: Location):
    store = UnconditionalLeaseStore(clock)
    with pytest.raises(StoreNotConditional) as caught:
        RunLease(out, RUN_A, 60.0, clock=clock, store=store).acquire()
    assert isinstance(caught.value, UsageError)  # the command exits 2 with it
    assert str(caught.value) == (
        f"the store of {out.uri} ignores conditional writes: it accepted a second create of its lease, so it cannot "
        "keep two runs apart; write to a store that honours If-None-Match and If-Match on PUT"
    )
    assert str(pickle.loads(pickle.dumps(caught.value))) == str(caught.value)

    held = store.stored()
    assert held is not None
    store.put(held.model_copy(update={"nonce": "fedcba9876543210"}))  # a live holder's: read first, left alone
    with pytest.raises(LeaseHeld):
        RunLease(out, RUN_B, 60.0, clock=clock, store=store).acquire()
    assert store.stored() == held.model_copy(update={"nonce": "fedcba9876543210"})
    clock.advance(61.0)  # expired: taken over, and the replace at a tag it never had is accepted too
    with pytest.raises(StoreNotConditional, match="it accepted a replace at a tag it never had"):
        RunLease(out, RUN_B, 60.0, clock=clock, store=store).acquire()


class _Overwritten(MemoryLeaseStore):
    """A store on which a rival's record lands right after the lease's own, written without condition (by a
    version of the job that knows no lease, say)."""

    rival: LeaseRecord | None = None

    def create(self, data: bytes) -> str:
        try:
            return super().create(data)
        except Conflict:
            if self.rival is not None:
                self.put(self.rival)
            raise


def test_a_lease_read_back_as_another_runs_is_not_held(clock: FakeClock, out: Location):
    store = _Overwritten(clock)
    RunLease(out, RUN_A, 60.0, clock=clock, store=store).acquire()
    rival = store.stored()
    assert rival is not None
    store.remove()
    store.rival = rival
    lease = RunLease(out, RUN_B, 60.0, clock=clock, store=store)
    with pytest.raises(LeaseHeld, match=f"in use by run {RUN_A} "):
        lease.acquire()
    with pytest.raises(RuntimeError, match="never acquired"):
        lease.check()
