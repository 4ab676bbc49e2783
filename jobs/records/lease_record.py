"""What the run lease's protocol (``jobs.records.lease``) and its stores (``jobs.records.lease_stores``) share: the
record, how a store answers a read, and the interface of a store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from schemas.choices import DEFAULT_LEASE_TTL_S

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def write_deadline_s(ttl_s: float) -> float:
    """How long a write under a lease of ``ttl_s`` may take, retries included (``common.retries.Deadline``): a
    third of the ttl, the time between two renewals. While its renewals succeed, a holder's record has at least
    two thirds of the ttl left whenever it is checked, so a write started after a check lands with a third
    left (more than the holder's margin, ``RunLease.margin_s``) before any other run may take the output over.
    And a renewal that gives up by its deadline leaves the heartbeat time for another before the holder counts
    its lease lost."""
    return ttl_s / 3


DEFAULT_WRITE_DEADLINE_S = write_deadline_s(DEFAULT_LEASE_TTL_S)
"""For writes of the commit path made without a lease's ttl at hand (tests, benchmarks): the default lease's."""


def stamp(seconds: float) -> str:
    """``seconds`` since the epoch as a record's times are written."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(TIME_FORMAT)


class LeaseRecord(BaseModel):
    """What ``OUT/_runs/_lease.json`` holds: who holds the output, since and until when. Times are UTC,
    ISO-8601 to the second with a ``Z``."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    host: str
    pid: int
    pid_started: float | None = None
    """When the holder's process started (seconds since the epoch): with ``pid``, tells it from a later process
    given the same pid. None where it could not be read (such a holder is never taken for gone)."""
    pid_scope: str = ""
    """Where ``pid`` names a process: the host's boot and the holder's pid namespace
    (``jobs.records.lease_holder``)."""
    local_ray: bool = False
    """Whether the holder's Ray was a local one its own process started, which ends with it; False for a
    cluster's, whose tasks may outlive their driver, and in records from before the field."""
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
    released: bool = False
    """Written back so by a holder that ended in order: free to take over at once (epoch + 1), whatever its age.
    The record is never deleted, so that epochs only grow per output."""

    def expires_s(self) -> float:
        """``expires_at`` in seconds since the epoch."""
        return datetime.strptime(self.expires_at, TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()

    def dump(self) -> bytes:
        return self.model_dump_json(indent=2).encode()


class Conflict(Exception):
    """The lease changed since read (a precondition failed): not an ``OSError``, so ``retrying`` lets it through."""


@dataclass(frozen=True)
class Seen:
    """The lease as read: its record, the tag a conditional write names it by, and its time left."""

    record: LeaseRecord
    etag: str
    remaining_s: float
    """Seconds until the record expires, by the store's clock; negative once it has."""


class LeaseStore(Protocol):
    """Where the record lives. Its writes are conditional and settled by the store, so that of two runs racing
    exactly one wins: ``create`` raises ``Conflict`` where a record exists, ``replace`` where the record is no
    longer at ``etag`` (``FileNotFoundError`` where it is gone)."""

    def read(self) -> Seen | None: ...

    def create(self, data: bytes) -> str: ...

    def replace(self, data: bytes, etag: str) -> str: ...

    def lock(self) -> bool:
        """Keep this host's other processes out for the lease's life where the store can; False if one holds it."""
        ...

    def unlock(self) -> None: ...
