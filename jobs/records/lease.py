"""A lease on an output, so that two runs never write into one ``OUT`` at once.

Two runs over one output would publish markers and manifests from two plans into the same ``_runs/``, and each
one's resume and cleanup would take the other's files for its own leftovers. So a run holds the lease
``OUT/_runs/_lease.json`` (a ``LeaseRecord``) for as long as it writes, and a second run refuses to start
(``LeaseHeld``) instead of mixing in.

The record is only ever created where absent and replaced where unchanged since read, so of two runs racing for it
exactly one wins: on S3 by conditional PUTs (``If-None-Match: *``, ``If-Match: <etag>``), which the store settles
atomically; on local disk by a hard link (fails where the name exists) under an ``flock`` that the holder's process
keeps on ``_runs/_lease.lock`` for the lease's whole life. The holder renews the record every third of its time to
live from a heartbeat thread. A record not renewed within ``ttl_s`` (on S3 by the store's clock, from its
``Last-Modified`` to its ``Date``, so no host's clock matters) may be taken over by the next run, one epoch
higher. Its holder gives up a little earlier (``clock_skew_s``): one that could not renew in time, or whose record
is another's now, has lost the lease and must not write again (``RunLease.check``); its Ray tasks check the same
through a ``Fence`` before they publish.

A killed holder keeps the output until its record expires, locally as on S3: its ``flock`` goes with its process,
but only the record's silence proves a holder dead to a run on another host.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import IO, Any, Awaitable, Callable, TypeVar

import botocore.exceptions
import fsspec.asyn
from pydantic import BaseModel, ConfigDict

from common.storage import Location, is_s3, retrying
from schemas import layout
from workers.files import write_atomic

T = TypeVar("T")

DEFAULT_CLOCK_SKEW_S = 2.0
"""How long before its lease's expiry a holder stops trusting it (at most a third of the ttl, the time between two
renewals): S3 dates are whole seconds, so a store may judge a record a second older than it is, and hosts sharing
a local ``OUT`` judge its expiry by clocks that may differ by as much. Others take over at the expiry itself, so
that ``ttl_s`` is exactly how long a killed holder keeps the output."""
ACQUIRE_ATTEMPTS = 5
"""Rounds of create, read and take-over before ``acquire`` gives up: a round is repeated only when the lease
changed hands between its requests."""
LOCK_HOLDER_WAIT_S = 1.0
"""How long a run refused the local lock waits for the holder's record, to name it: the holder writes it right
after taking the lock."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_CONFLICT_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


class LeaseRecord(BaseModel):
    """What ``OUT/_runs/_lease.json`` holds: who holds the output, since and until when. Times are UTC,
    ISO-8601 to the second with a ``Z``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    host: str
    pid: int
    epoch: int
    """1 for a fresh lease, one more at each takeover: tells a holder from the one it took over from."""
    acquired_at: str
    renewed_at: str
    expires_at: str
    """``renewed_at + ttl_s`` rounded up, by the holder's clock: what decides expiry of a local lease. On S3 it is
    for people only; the store's own clock decides there."""
    ttl_s: float
    nonce: str
    """Random per ``RunLease``: tells its own writes from anyone else's, even a run of the same id, so that a
    request retried after its answer was lost finds its own record rather than a rival."""


class LeaseHeld(Exception):
    """OUT is held by another live run."""

    def __init__(self, out_uri: str, holder: LeaseRecord | None) -> None:
        super().__init__(out_uri, holder)  # both in args, so that it pickles
        self.out_uri = out_uri
        self.holder = holder
        """The holder's record; None where its holder has not written it yet (it holds the local lock)."""

    def __str__(self) -> str:
        if self.holder is None:
            return f"output {self.out_uri} is in use by another process, not yet named in its lease"
        held = self.holder
        return (
            f"output {self.out_uri} is in use by run {held.run_id} (host {held.host}, pid {held.pid}) "
            f"since {held.acquired_at}, lease expires {held.expires_at}"
        )


class LeaseLost(Exception):
    """This run's lease was taken over or could not be renewed in time: it must not write another marker or
    manifest."""


class _Conflict(Exception):
    """The lease changed since read (a precondition failed): not an ``OSError``, so ``retrying`` lets it through."""


@dataclass(frozen=True)
class _Seen:
    """The lease as read: its record, the tag a conditional write names it by, and its time left."""

    record: LeaseRecord
    etag: str
    remaining_s: float
    """Seconds until the record expires, by the store's clock; negative once it has."""


class _LocalLease:
    """The lease file on local disk; its etag is the hash of its bytes, so replacing it is conditional as on S3
    (against a writer on another host; on this one the holder's ``flock`` already keeps others out)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def read(self) -> _Seen | None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        record = LeaseRecord.model_validate_json(data)
        return _Seen(record, _etag(data), _seconds(record.expires_at) - time.time())

    def create(self, data: bytes) -> str:
        """Publish ``data`` whole where no lease is: written aside, then hard-linked to the name, which fails if
        the name exists (a plain exclusive open would let readers see it half written)."""
        partial = f"{self.path}.{uuid.uuid4().hex[:8]}{layout.PARTIAL_SUFFIX}"
        try:
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(partial, self.path)
        except FileExistsError:
            raise _Conflict(self.path) from None
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return _etag(data)

    def replace(self, data: bytes, etag: str) -> str:
        seen = self.read()
        if seen is None:
            raise FileNotFoundError(self.path)
        if seen.etag != etag:
            raise _Conflict(self.path)
        write_atomic(self.path, data)
        return _etag(data)

    def delete(self, etag: str) -> None:
        seen = self.read()
        if seen is not None and seen.etag == etag:
            os.remove(self.path)


class _S3Lease:
    """The lease object on S3, read and written by single requests whose conditions the store checks.

    Each request is retried after a transient error (``retrying``, and botocore per request). A retried
    conditional PUT whose first try did succeed fails its condition: callers read the lease back and recognise
    their own record by its nonce."""

    def __init__(self, lease: Location) -> None:
        self.fs = lease.fs
        self.bucket, self.key, _ = lease.fs.split_path(lease.path)

    def read(self) -> _Seen | None:
        try:
            data, response = self._request(self._get)
        except FileNotFoundError:
            return None
        record = LeaseRecord.model_validate_json(data)
        store_now = parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
        age_s = store_now - response["LastModified"].timestamp()
        return _Seen(record, response["ETag"], record.ttl_s - age_s)

    def create(self, data: bytes) -> str:
        return self._call("put_object", Body=data, IfNoneMatch="*")["ETag"]

    def replace(self, data: bytes, etag: str) -> str:
        return self._call("put_object", Body=data, IfMatch=etag)["ETag"]

    def delete(self, etag: str) -> None:
        """Delete the lease if still at ``etag``. A store that ignores ``If-Match`` on DELETE deletes it anyway:
        the lease was ours when read an instant before, so only a takeover in that instant (possible only once
        our record has expired) would be lost."""
        try:
            self._call("delete_object", IfMatch=etag)
        except (_Conflict, FileNotFoundError):  # changed or gone since read: no longer ours to delete
            pass

    async def _get(self) -> tuple[bytes, dict[str, Any]]:
        response = await self.fs._call_s3("get_object", Bucket=self.bucket, Key=self.key)
        async with response["Body"] as body:
            return await body.read(), response

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._request(lambda: self.fs._call_s3(method, Bucket=self.bucket, Key=self.key, **kwargs))

    def _request(self, request: Callable[[], Awaitable[T]]) -> T:
        def once() -> T:
            try:
                return fsspec.asyn.sync(self.fs.loop, request)
            except OSError as error:
                if _is_conflict(error):
                    raise _Conflict(str(error)) from error
                raise

        return retrying(once)


@dataclass(frozen=True)
class Fence:
    """Picklable token shipped to Ray tasks: (out Location, run_id, epoch, nonce).

    A task checks it right before it publishes, so that once its run has lost the output no further marker of that
    run lands in it."""

    out: Location
    run_id: str
    epoch: int
    nonce: str
    margin_s: float = 0.0
    """The holder's margin (``RunLease``): a lease this close to its expiry no longer counts as held."""

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease, read now from the store, is this run's at this epoch and not about
        to expire: past its expiry another run may take it over at any moment."""
        uri = self.out.uri
        seen = _lease_store(self.out).read()
        if seen is None:
            raise LeaseLost(f"the lease on {uri} of run {self.run_id} is gone")
        held = seen.record
        if (held.run_id, held.epoch, held.nonce) != (self.run_id, self.epoch, self.nonce):
            raise LeaseLost(f"the lease on {uri} was taken over by run {held.run_id} (epoch {held.epoch})")
        if seen.remaining_s < self.margin_s:
            raise LeaseLost(f"the lease on {uri} of run {self.run_id} is expiring unrenewed")


class RunLease:
    """One run's lease on ``out``: ``acquire`` (or ``with``) before writing anything, ``check`` before each
    commit, ``release`` at the end."""

    def __init__(self, out: Location, run_id: str, ttl_s: float, clock_skew_s: float = DEFAULT_CLOCK_SKEW_S) -> None:
        self.out = out
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.margin_s = min(clock_skew_s, ttl_s / 3)
        """How long before the lease's expiry this holder gives it up (``DEFAULT_CLOCK_SKEW_S``)."""
        self.nonce = secrets.token_hex(8)
        self._store = _lease_store(out)
        self._record: LeaseRecord | None = None
        self._etag = ""
        self._renewed = 0.0
        """``time.monotonic()`` when the last successful write of the record was sent: an underestimate of when
        it landed, so the holder's deadline comes before anyone else's."""
        self._lost: str | None = None
        self._lock: IO[bytes] | None = None
        self._writing = threading.Lock()
        """Held while the record is rewritten: by the heartbeat or ``announce``, one after the other."""
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def acquire(self) -> RunLease:
        """Take the lease: create it, or take over an expired one (epoch + 1); raise ``LeaseHeld`` naming the run
        that has it otherwise. Called again, it finds its own record and keeps it: held again, whatever ``lost``
        said, since the store shows no other run wrote in between."""
        locked_here = self.out.is_local and self._lock is None
        if locked_here:
            self._lock = self._take_lock()
        try:
            self._take()
        except BaseException:
            if locked_here:
                self._unlock()
            raise
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

    def announce(self, run_id: str) -> None:
        """Hold the lease as run ``run_id`` from now on (the record, ``LeaseHeld`` messages and the fence name
        it): a resumed run learns its id, the earlier run's, only from the output, which it reads holding the
        lease. Raises ``LeaseLost`` if the lease is no longer this holder's."""
        self._held()
        self.run_id = run_id
        try:
            self._renew()
        except LeaseLost as lost:
            self._lost = str(lost)
            raise

    @property
    def fence(self) -> Fence:
        record = self._held()
        return Fence(self.out, record.run_id, record.epoch, record.nonce, self.margin_s)

    @property
    def lost(self) -> str | None:
        """None while held; else one line why not."""
        return self._lost

    def check(self) -> None:
        """Raise ``LeaseLost`` if the lease is lost, or last renewed too long ago (``ttl_s`` less the margin:
        another run may have taken it over since), or no longer this run's in the store."""
        self._held()
        waited = time.monotonic() - self._renewed
        if self._lost is None and waited > self.ttl_s - self.margin_s:
            self._lost = f"the lease on {self.out.uri} was not renewed for {waited:.0f} s (ttl {self.ttl_s:g} s)"
        if self._lost is not None:
            raise LeaseLost(self._lost)
        self.fence.check()

    def release(self) -> None:
        """Stop renewing, delete the lease if it is still ours, let go of the local lock. Idempotent; a lease lost
        to another run is left to it. A lease the store fails to delete is left to expire: raising here would
        hide whatever ended the run."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()  # before deleting: a renewal in flight must not write the record back
            self._heartbeat = None
        try:
            seen = self._store.read() if self._record is not None else None
            if seen is not None and seen.record.nonce == self.nonce:
                self._store.delete(seen.etag)
        except (OSError, ValueError):  # ValueError: a record no run of ours wrote, not ours to delete
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
        holder: LeaseRecord | None = None
        for _ in range(ACQUIRE_ATTEMPTS):
            record = self._new_record(epoch=1)
            sent = time.monotonic()
            try:
                self._hold(record, self._store.create(_dump(record)), sent)
                return
            except _Conflict:
                pass
            seen = self._store.read()
            if seen is None:
                continue  # released between the two requests
            holder = seen.record
            if seen.record.nonce == self.nonce:  # our own, from a request retried or an earlier acquire
                written_s_ago = max(0.0, seen.record.ttl_s - seen.remaining_s)
                self._hold(seen.record, seen.etag, time.monotonic() - written_s_ago)
                return
            if seen.remaining_s >= 0:
                raise LeaseHeld(self.out.uri, seen.record)
            record = self._new_record(epoch=seen.record.epoch + 1)
            sent = time.monotonic()
            try:
                self._hold(record, self._store.replace(_dump(record), seen.etag), sent)
                return
            except (_Conflict, FileNotFoundError):
                continue  # another run took it over first, or its holder released it: look again
        raise LeaseHeld(self.out.uri, holder)

    def _take_lock(self) -> IO[bytes]:
        """The local lock, held until ``release`` (or the process's end). The lock file is never removed: a run
        could otherwise lock a file already unlinked while another locks its successor."""
        path = self.out.child(layout.lease_lock()).path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle = open(path, "ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise LeaseHeld(self.out.uri, self._lock_holder()) from None
        return handle

    def _lock_holder(self) -> LeaseRecord | None:
        """The record of the process holding the local lock; a stale one (or none) until it has written its own."""
        deadline = time.monotonic() + LOCK_HOLDER_WAIT_S
        seen = self._store.read()
        while (seen is None or seen.remaining_s < 0) and time.monotonic() < deadline:
            time.sleep(0.05)
            seen = self._store.read()
        return seen.record if seen else None

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the only descriptor of the lock releases it
            self._lock = None

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl_s / 3) and self._lost is None and self._beat():
            pass

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
        waited = time.monotonic() - self._renewed
        if waited > self.ttl_s - self.margin_s:
            self._lost = f"could not renew the lease on {self.out.uri} for {waited:.0f} s (ttl {self.ttl_s:g} s)"
            return False
        return True

    def _renew(self) -> None:
        with self._writing:
            held = self._held()
            record = self._new_record(held.epoch, held.acquired_at)
            sent = time.monotonic()
            try:
                etag = self._store.replace(_dump(record), self._etag)
            except _Conflict:
                seen = self._store.read()
                if seen is None or seen.record.nonce != self.nonce:
                    raise LeaseLost(self._refused(seen)) from None
                record, etag = seen.record, seen.etag  # our own write, retried after its answer was lost
            except FileNotFoundError:
                raise LeaseLost(self._refused(None)) from None
            self._hold(record, etag, sent)

    def _refused(self, seen: _Seen | None) -> str:
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
        now = time.time()
        return LeaseRecord(
            run_id=self.run_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            epoch=epoch,
            acquired_at=acquired_at or _iso(now),
            renewed_at=_iso(now),
            expires_at=_iso(math.ceil(now + self.ttl_s)),
            ttl_s=self.ttl_s,
            nonce=self.nonce,
        )


def _lease_store(out: Location) -> _LocalLease | _S3Lease:
    lease = out.child(layout.lease())
    if lease.is_local:
        return _LocalLease(lease.path)
    if is_s3(lease.fs):
        return _S3Lease(lease)
    raise ValueError(f"no run lease on {out.uri}: only local paths and s3:// hold one")


def _is_conflict(error: OSError) -> bool:
    """Whether an S3 request failed for its condition (412) or a concurrent conditional write (409): the lease
    changed since read. s3fs turns the botocore error into an ``OSError`` and keeps it as the cause."""
    if isinstance(error, FileExistsError):
        return True
    cause = error.__cause__
    if not isinstance(cause, botocore.exceptions.ClientError):
        return False
    code = cause.response.get("Error", {}).get("Code")
    status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _CONFLICT_CODES or status in (409, 412)


def _dump(record: LeaseRecord) -> bytes:
    return record.model_dump_json(indent=2).encode()


def _etag(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(_TIME_FORMAT)


def _seconds(iso: str) -> float:
    return datetime.strptime(iso, _TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
