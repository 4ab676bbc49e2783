"""The token a run's Ray tasks check right before they publish, so that a run that lost its output stops there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.retries import Deadline
from common.storage import Location
from jobs.records.lease_errors import LeaseLost
from jobs.records.lease_record import DEFAULT_WRITE_DEADLINE_S, LeaseStore
from jobs.records.lease_stores import store_for


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
    store: LeaseStore | None = field(default=None, compare=False, repr=False)
    """The holder's store; None after pickling (it may hold a lock or a client): rebuilt from ``out``."""
    write_deadline_s: float = DEFAULT_WRITE_DEADLINE_S
    """How long a write the lease guards may take (``write_deadline_s`` of the lease's ttl): the check's
    requests, and the publishing that follows it (``deadline``)."""

    @property
    def deadline(self) -> Deadline:
        """The deadline of each write published under this fence, timed from when the write starts."""
        return Deadline(self.write_deadline_s)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "store": None}

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease, read now from the store, is this run's at this epoch and not about
        to expire: past its expiry another run may take it over at any moment."""
        uri = self.out.uri
        seen = (self.store or store_for(self.out, deadline_s=self.write_deadline_s)).read()
        if seen is None:
            raise LeaseLost(f"the lease on {uri} of run {self.run_id} is gone")
        held = seen.record
        if (held.run_id, held.epoch, held.nonce) != (self.run_id, self.epoch, self.nonce):
            raise LeaseLost(f"the lease on {uri} was taken over by run {held.run_id} (epoch {held.epoch})")
        if held.released:
            raise LeaseLost(f"the lease on {uri} of run {self.run_id} was released")
        if seen.remaining_s < self.margin_s:
            raise LeaseLost(f"the lease on {uri} of run {self.run_id} is expiring unrenewed")


def deadline_of(fence: Fence | None) -> Deadline:
    """The deadline of a write published under ``fence``; without one, the default lease's."""
    return fence.deadline if fence is not None else Deadline(DEFAULT_WRITE_DEADLINE_S)
