"""A lease on an output, so that two runs never write into one ``OUT`` at once.

Two runs over one output would publish markers and manifests from two plans into the same ``_runs/``, and each
one's resume and cleanup would take the other's files for its own leftovers. So a run holds the lease
``OUT/_runs/_lease.json`` (a ``LeaseRecord``) for as long as it writes, and a second run refuses to start
(``LeaseHeld``) instead of mixing in.

This module is the protocol. Where the record lives is a ``LeaseStore`` (``jobs.records.lease_stores``: local
disk, S3; the record and the store's interface are in ``jobs.records.lease_record``), the time it reads a
``Clock``. A store only ever creates the record where absent and replaces it where unchanged since read, so of two
runs racing for it exactly one wins. The holder renews the record every third of its time to live from a heartbeat
thread. A record not renewed within ``ttl_s`` (by the store's clock) may be taken over by the next run, one epoch
higher. Its holder gives up a little earlier (``clock_skew_s``): one that could not renew in time, or whose record
is another's now, has lost the lease and must not write again (``RunLease.check``); its Ray tasks check the same
through a ``Fence`` before they publish.

A killed holder keeps the output until its record expires, unless it ran on this host with a Ray of its own: then
its process and that Ray's workers being gone prove that nothing of it writes again, and the next run takes over
at once (``jobs.records.lease_holder``). Only the record's silence proves a holder dead to a run on another host, or one
whose tasks ran on a cluster. A store that ignores conditional writes is refused at acquire (``StoreNotConditional``).
A holder that ends in order writes its record back released rather than deleting it, so that the next run takes it
over one epoch higher: epochs only grow per output, which is what lets a marker's epoch tell a stale writer from the
holder (``common.epochs``).
"""

from __future__ import annotations

import math
import secrets
import threading
from functools import partial
from typing import Callable

from common.storage import Location
from jobs.records.clock import SYSTEM_CLOCK, Clock
from jobs.records.fence import Fence
from jobs.records.lease_errors import LeaseHeld, LeaseLost, StoreNotConditional
from jobs.records.lease_holder import HOST, HolderProcesses, holder_gone, mark_local_ray, this_process
from jobs.records.lease_record import Conflict, LeaseRecord, LeaseStore, Seen, stamp, write_deadline_s
from jobs.records.lease_stores import store_for

DEFAULT_CLOCK_SKEW_S = 2.0
"""How long before its lease's expiry a holder stops trusting it (at most a third of the ttl, the time between two
renewals): S3 dates are whole seconds, so a store may judge a record a second older than it is, and hosts sharing
a local ``OUT`` judge its expiry by clocks that may differ by as much. Others take over at the expiry itself, so
that ``ttl_s`` is exactly how long a killed holder keeps the output."""
ACQUIRE_ATTEMPTS = 5
"""Rounds of read, then create or take-over, before ``acquire`` gives up: a round is repeated only when the lease
changed hands between its requests."""
LOCK_HOLDER_WAIT_S = 1.0
"""How long a run refused the local lock waits for the holder's record, to name it: the holder writes it right
after taking the lock."""
LOCK_HOLDER_POLL_S = 0.05


class RunLease:
    """One run's lease on ``out``: ``acquire`` (or ``with``) before writing anything, ``check`` before each
    commit, ``release`` at the end. ``clock`` and ``store`` default to the host's and the one for ``out``."""

    def __init__(
        self,
        out: Location,
        run_id: str,
        ttl_s: float,
        clock_skew_s: float = DEFAULT_CLOCK_SKEW_S,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: LeaseStore | None = None,
        local_ray: bool = False,
        processes: HolderProcesses = HOST,
    ) -> None:
        self.out = out
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.margin_s = min(clock_skew_s, ttl_s / 3)
        """How long before the lease's expiry this holder gives it up (``DEFAULT_CLOCK_SKEW_S``)."""
        self.nonce = secrets.token_hex(8)
        self._clock = clock
        self.write_deadline_s = write_deadline_s(ttl_s)
        """How long each write this lease guards may take, its own requests included (``write_deadline_s``)."""
        self._store = store or store_for(out, clock, self.write_deadline_s)
        self.local_ray = local_ray
        """Whether this run's Ray is a local one its process starts after taking the lease (``holder_gone``)."""
        self._processes = processes
        self.taken_from: LeaseRecord | None = None
        """The record of a killed run on this host whose lease this one took over before it expired (its line for
        the console: ``jobs.records.lease_holder.took_over``)."""
        self._record: LeaseRecord | None = None
        self._etag = ""
        self._renewed = 0.0
        """``clock.monotonic()`` when the last successful write of the record was sent: an underestimate of when
        it landed, so the holder's deadline comes before anyone else's."""
        self._lost: str | None = None
        self._locked = False
        self._writing = threading.Lock()
        """Held while the record is rewritten: by the heartbeat or ``announce``, one after the other."""
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> RunLease:
        """Take the lease: create it, or take over an expired one or a killed local run's (epoch + 1); raise
        ``LeaseHeld`` naming the run that has it otherwise, ``StoreNotConditional`` where the store would let two
        runs hold it. Called again, it finds its own record and keeps it: held again, whatever ``lost`` said,
        since the store shows no other run wrote in between."""
        locked_here = not self._locked
        if locked_here:
            if not self._store.lock():
                raise LeaseHeld(self.out.uri, self._lock_holder())
            self._locked = True
        try:
            self._take()
        except BaseException:
            if locked_here:
                self._unlock()
            raise
        if self.local_ray:
            mark_local_ray(self.nonce)
        self._lost = None
        return self

    def start_heartbeat(self) -> None:
        """Renew the lease every ``ttl_s / 3`` from a daemon thread until released or lost (no second thread while
        one beats)."""
        self._held()
        if self._heartbeat is not None and self._heartbeat.is_alive():
            return
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat_until_stopped, name=f"lease-{self.run_id}", daemon=True)
        self._heartbeat.start()

    def announce(self, run_id: str, past_epoch: int = 0) -> None:
        """Hold the lease as run ``run_id`` from now on (the record, ``LeaseHeld`` messages and the fence name
        it): a resumed run learns its id, the earlier run's, only from the output, which it reads holding the
        lease. The epoch moves past ``past_epoch`` (the latest the output's epoch records name) where it is not
        already: a lease record deleted by hand starts again at 1, and epochs must only grow per output. Raises
        ``LeaseLost`` if the lease is no longer this holder's."""
        self._held()
        self.run_id = run_id
        try:
            self._renew(past_epoch + 1)
        except LeaseLost as lost:
            self._lost = str(lost)
            raise

    @property
    def fence(self) -> Fence:
        record = self._held()
        return Fence(
            self.out, record.run_id, record.epoch, record.nonce, self.margin_s, self._store, self.write_deadline_s
        )

    @property
    def lost(self) -> str | None:
        """None while held; else one line why not: a renewal refused, the heartbeat dead, or no renewal that
        succeeded for ``ttl_s`` less the margin, whatever kept it (a store that hangs: another run may have taken
        the lease over since)."""
        if self._lost is None and self._record is not None:
            waited = self._clock.monotonic() - self._renewed
            if waited > self.ttl_s - self.margin_s:
                self._lost = f"the lease on {self.out.uri} was not renewed for {waited:.0f} s (ttl {self.ttl_s:g} s)"
        return self._lost

    def check(self) -> None:
        """Raise ``LeaseLost`` if the lease is lost (``lost``) or no longer this run's in the store."""
        self._held()
        if (lost := self.lost) is not None:
            raise LeaseLost(lost)
        self.fence.check()

    def release(self) -> None:
        """Stop renewing, write the record back released (expired now, ``released`` set) if it is still ours, let
        go of the local lock. Idempotent; a lease lost to another run is left to it. The record stays, so that the
        next run takes it over one epoch higher rather than creating it afresh at 1. A lease the store fails to
        rewrite is left to expire: raising here would hide whatever ended the run."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()  # before releasing: a renewal in flight must not write the record back live
            self._heartbeat = None
        try:
            seen = self._store.read() if self._record is not None else None
            if seen is not None and seen.record.nonce == self.nonce and not seen.record.released:
                now = stamp(self._clock.now())
                released = seen.record.model_copy(update={"released": True, "renewed_at": now, "expires_at": now})
                self._store.replace(released.dump(), seen.etag)
        except (OSError, ValueError, Conflict):  # ValueError: a record no run of ours wrote; Conflict: changed since
            pass
        finally:
            self._unlock()
        if self._record is not None and self._lost is None:
            self._lost = f"the lease on {self.out.uri} was released"

    def __enter__(self) -> RunLease:
        self.acquire()
        self.start_heartbeat()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _take(self) -> None:
        """Read first, so that a store that ignores ``If-None-Match`` is never made to write over a live holder's
        record; a record there is replaced only where expired, or its holder gone (``holder_gone``)."""
        holder: LeaseRecord | None = None
        for _ in range(ACQUIRE_ATTEMPTS):
            seen = self._store.read()
            sent = self._clock.monotonic()
            if seen is None:
                created = self._new_record(epoch=1).dump()
                try:
                    self._store.create(created)
                except Conflict:
                    continue  # created in between, by another run or by a retry of this request: look again
                self._confirm(sent, partial(self._store.create, created), "a second create of its lease")
                return
            holder = seen.record
            if holder.nonce == self.nonce and not holder.released:  # ours: a retried request, or an earlier acquire
                written_s_ago = max(0.0, holder.ttl_s - seen.remaining_s)
                self._hold(holder, seen.etag, sent - written_s_ago)
                return
            free = holder.released or seen.remaining_s < 0
            gone = not free and holder_gone(holder, self._processes, self._clock)
            if not free and not gone:
                raise LeaseHeld(self.out.uri, holder)
            taken = self._new_record(epoch=holder.epoch + 1).dump()
            try:
                self._store.replace(taken, seen.etag)
            except (Conflict, FileNotFoundError):
                continue  # another run took it over first, or its holder released it: look again
            self._confirm(sent, partial(self._store.replace, taken, "not-its-etag"), "a replace at a tag it never had")
            self.taken_from = holder if gone else None
            return
        raise LeaseHeld(self.out.uri, holder)

    def _confirm(self, sent: float, again: Callable[[], object], accepted: str) -> None:
        """Hold the record just written, once the store has refused ``again`` (the same write under a condition
        that must fail now) and read the record back as this holder's: a store that ignores conditional writes
        would let two runs hold the lease, unawares. Two requests."""
        try:
            again()
        except (Conflict, FileNotFoundError):
            pass
        else:
            raise StoreNotConditional(self.out.uri, accepted)
        seen = self._store.read()
        if seen is None or seen.record.nonce != self.nonce:
            raise LeaseHeld(self.out.uri, seen.record if seen else None)
        self._hold(seen.record, seen.etag, sent)

    def _lock_holder(self) -> LeaseRecord | None:
        """The record of the process holding the local lock; a stale one (or none) until it has written its own."""
        deadline = self._clock.monotonic() + LOCK_HOLDER_WAIT_S
        seen = self._store.read()
        while (seen is None or seen.remaining_s < 0 or seen.record.released) and self._clock.monotonic() < deadline:
            self._clock.sleep(LOCK_HOLDER_POLL_S)
            seen = self._store.read()
        return seen.record if seen else None

    def _unlock(self) -> None:
        if self._locked:
            self._store.unlock()
            self._locked = False

    def _beat_until_stopped(self) -> None:
        """Renew a third of the ttl after the last good renewal was sent, a ninth after a failed one, until stopped
        or lost; a heartbeat that dies of anything else (a bug, a malformed answer) loses the lease, not silently."""
        try:
            while not self._clock.wait(self._stop, self._next_beat_s()) and self._lost is None and self._beat():
                pass
        except Exception as error:
            self._lost = f"the heartbeat of the lease on {self.out.uri} died: {type(error).__name__}: {error}"

    def _next_beat_s(self) -> float:
        since = self._clock.monotonic() - self._renewed
        return max(self.ttl_s / 3 - since, self.ttl_s / 9)

    def _beat(self) -> bool:
        """Renew once; whether the heartbeat goes on."""
        try:
            self._renew()
            return True
        except LeaseLost as lost:
            self._lost = str(lost)
            return False
        except OSError:  # transient, and retried already: the next beat tries again while time is left
            pass
        waited = self._clock.monotonic() - self._renewed
        if waited > self.ttl_s - self.margin_s:
            why = f"could not renew the lease on {self.out.uri} for {waited:.0f} s (ttl {self.ttl_s:g} s)"
            self._lost = self._lost or why
            return False
        return True

    def _renew(self, least_epoch: int = 0) -> None:
        with self._writing:
            held = self._held()
            record = self._new_record(max(held.epoch, least_epoch), held.acquired_at)
            sent = self._clock.monotonic()
            try:
                etag = self._store.replace(record.dump(), self._etag)
            except Conflict:
                seen = self._store.read()
                if seen is None or seen.record.nonce != self.nonce:
                    raise LeaseLost(self._refused(seen)) from None
                record, etag = seen.record, seen.etag  # our own write, retried after its answer was lost
            except FileNotFoundError:
                raise LeaseLost(self._refused(None)) from None
            self._hold(record, etag, sent)

    def _refused(self, seen: Seen | None) -> str:
        if seen is None:
            return f"renewal refused: the lease on {self.out.uri} was deleted"
        return f"renewal refused: the lease on {self.out.uri} was taken over by run {seen.record.run_id}"

    def _hold(self, record: LeaseRecord, etag: str, renewed: float) -> None:
        self._record, self._etag, self._renewed = record, etag, renewed

    def _held(self) -> LeaseRecord:
        if self._record is None:
            raise RuntimeError(f"the lease on {self.out.uri} was never acquired")
        return self._record

    def _new_record(self, epoch: int, acquired_at: str | None = None) -> LeaseRecord:
        now = self._clock.now()
        return LeaseRecord(
            run_id=self.run_id,
            **this_process(),
            local_ray=self.local_ray,
            epoch=epoch,
            acquired_at=acquired_at or stamp(now),
            renewed_at=stamp(now),
            expires_at=stamp(math.ceil(now + self.ttl_s)),
            ttl_s=self.ttl_s,
            nonce=self.nonce,
        )
