"""A run lease store in memory, with S3's semantics: conditional writes and a record's age by the store's clock.
The protocol's tests run on it with a ``FakeClock``; and on a store that ignores the conditions, which the protocol
must refuse."""

from __future__ import annotations

import threading

from common.storage import Location
from jobs.records.clock import Clock
from jobs.records.fence import Fence
from jobs.records.lease_record import Conflict, LeaseRecord, Seen
from tests.support.fake_clock import FakeClock


class MemoryLeaseStore:
    """One lease record, with ways to misbehave: ``down`` fails every request (``ConnectionError``),
    ``lose_next_answer`` makes the next replace land but answer as its retry would (a failed condition),
    ``locked_elsewhere`` has another process of the host hold the lock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.down = False
        self.lose_next_answer = False
        self.locked_elsewhere = False
        self.writes = 0
        self._guard = threading.Lock()
        self._stored: tuple[bytes, str, float] | None = None
        """The record's bytes, etag and when it was written, by ``clock``."""

    def read(self) -> Seen | None:
        with self._guard:
            self._answer()
            if self._stored is None:
                return None
            data, etag, written = self._stored
        record = LeaseRecord.model_validate_json(data)
        return Seen(record, etag, record.ttl_s - (self.clock.now() - written))

    def create(self, data: bytes) -> str:
        with self._guard:
            self._answer()
            if self._stored is not None:
                raise Conflict("exists")
            return self._write(data)

    def replace(self, data: bytes, etag: str) -> str:
        with self._guard:
            self._answer()
            if self._stored is None:
                raise FileNotFoundError("no lease")
            if self._stored[1] != etag:
                raise Conflict("changed")
            written = self._write(data)
            if self.lose_next_answer:
                self.lose_next_answer = False
                raise Conflict("changed (by this very request, whose first answer was lost)")
            return written

    def lock(self) -> bool:
        return not self.locked_elsewhere

    def unlock(self) -> None:
        pass

    def put(self, record: LeaseRecord) -> None:
        """Write ``record`` unconditionally, as a run on another host that took the lease over."""
        with self._guard:
            self._write(record.dump())

    def remove(self) -> None:
        """Remove the record, as someone deleting it by hand."""
        with self._guard:
            self._stored = None

    def stored(self) -> LeaseRecord | None:
        with self._guard:
            return None if self._stored is None else LeaseRecord.model_validate_json(self._stored[0])

    def _answer(self) -> None:
        if self.down:
            raise ConnectionError("the store does not answer")

    def _write(self, data: bytes) -> str:
        self.writes += 1
        etag = f'"{self.writes}"'
        self._stored = (data, etag, self.clock.now())
        return etag


def holding_fence(out: Location, run_id: str, epoch: int) -> Fence:
    """A fence of ``run_id`` at lease epoch ``epoch`` whose lease holds (its store, in memory, keeps the record it
    names): to write what a run holding ``out``'s lease at that epoch writes, without a run taking the lease over
    that many times."""
    store = MemoryLeaseStore(FakeClock())
    record = LeaseRecord(
        run_id=run_id,
        host="test-host",
        pid=1,
        epoch=epoch,
        acquired_at="2026-01-01T00:00:00Z",
        renewed_at="2026-01-01T00:00:00Z",
        expires_at="2026-01-01T00:03:00Z",
        ttl_s=180.0,
        nonce=f"{epoch:016x}",
    )
    store.put(record)
    return Fence(out, run_id, epoch, record.nonce, store=store)


class UnconditionalLeaseStore(MemoryLeaseStore):
    """A store that takes every write whatever its condition, as a store that ignores ``If-None-Match`` and
    ``If-Match`` does: two runs could both hold a lease there, so the lease refuses to be taken on it."""

    def create(self, data: bytes) -> str:
        with self._guard:
            self._answer()
            return self._write(data)

    def replace(self, data: bytes, etag: str) -> str:
        with self._guard:
            self._answer()
            return self._write(data)
