"""What a run is told when it may not write into an output: another run holds its lease, took it over, or the
store cannot keep two runs apart at all (``jobs.records.lease``)."""

from __future__ import annotations

from common.errors import UsageError
from jobs.records.lease_record import LeaseRecord


class LeaseHeld(Exception):
    """OUT is held by another live run."""

    def __init__(self, out_uri: str, holder: LeaseRecord | None) -> None:
        super().__init__(out_uri, holder)  # both in args, so that it pickles
        self.out_uri = out_uri
        self.holder = holder
        """The holder's record; None where its holder has not written it yet (it holds the local lock)."""

    def __str__(self) -> str:
        if self.holder is None or self.holder.released:  # released: another run is taking it over right now
            return f"output {self.out_uri} is in use by another process, not yet named in its lease"
        held = self.holder
        return (
            f"output {self.out_uri} is in use by run {held.run_id} (host {held.host}, pid {held.pid}) "
            f"since {held.acquired_at}, lease expires {held.expires_at}"
        )


class LeaseLost(Exception):
    """This run's lease was taken over or could not be renewed in time: it must not write another marker or
    manifest."""


class StoreNotConditional(UsageError):
    """The output's store accepted a write whose condition it should have refused: two runs could both hold the
    lease there, so no run may write into it (exit 2, this reason)."""

    def __init__(self, out_uri: str, accepted: str) -> None:
        super().__init__(out_uri, accepted)  # both in args, so that it pickles
        self.out_uri = out_uri
        self.accepted = accepted

    def __str__(self) -> str:
        return (
            f"the store of {self.out_uri} ignores conditional writes: it accepted {self.accepted}, so it cannot keep "
            "two runs apart; write to a store that honours If-None-Match and If-Match on PUT"
        )
