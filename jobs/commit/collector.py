"""Exactly-once on the driver, from receipts: which staged files make up each shard, and when a shard is whole.

The write stage stages result rows and sends the driver a receipt per staged file (``RECEIPT_SCHEMA``): the keys
of its rows, and how many rows an item gave when the file holds its last row. Receipts arrive in any order, and
a task Ray redid may send rows again (under the same file name, or, after a redone upstream task, in a file
that also holds new rows). The collector keeps, per shard in flight, the keys it has and the files that brought
them, so a file adding nothing is dropped, progress counts each frame once, and a shard goes to publishing
exactly once, as soon as every item's rows are in. Publishing keeps each frame once again and checks the shard
whole before committing it (``ShardCommitter.publish``), so the driver's bookkeeping never needs to be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import pyarrow as pa

from jobs.failures import Failure


class Publishing(Protocol):
    """Where complete shards go (``jobs.publish.Publisher``): started at once, their ends told later."""

    def submit(self, shard_id: str, files: list[str], items: int) -> None: ...

    def finished(self, wait: bool = False) -> list[tuple[str, Failure | None]]: ...

    def stop(self, grace_s: float) -> list[tuple[str, Failure | None]]: ...


@dataclass
class _Shard:
    """A shard in flight: its accepted files, its rows' keys, each item's row count once known, progress."""

    files: list[str] = field(default_factory=list)
    keys: set[int] = field(default_factory=set)
    rows: dict[int, int] = field(default_factory=dict)
    frames: int = 0
    errors: int = 0


class ShardCollector:
    """Gathers receipts per shard and hands a shard to ``publisher`` once every one of its ``items[shard]`` work
    items has staged all of its rows."""

    def __init__(
        self,
        publisher: Publishing,
        items: dict[str, int],
        on_rows: Callable[[int, int], None],
        on_commit: Callable[[str], None] = lambda shard_id: None,
    ) -> None:
        self.publisher = publisher
        self.items = items
        self.on_rows = on_rows
        self.on_commit = on_commit
        self.failures: dict[str, Failure] = {}
        """Shards whose publishing failed, and why: they stay uncommitted, for the pipeline's retry."""
        self._shards: dict[str, _Shard] = {}
        self._handed_over: set[str] = set()

    def add(self, receipts: pa.Table) -> None:
        for receipt in receipts.to_pylist():
            self._add(receipt)
        self._settle(self.publisher.finished())

    def finish(self, within: float | None = None) -> None:
        """Wait for every shard handed over to be published (or to fail); for a stopped run only ``within`` seconds,
        after which the publishing still running is cancelled."""
        self._settle(self.publisher.finished(wait=True) if within is None else self.publisher.stop(within))

    def _add(self, receipt: dict) -> None:
        shard_id = receipt["shard_id"]
        if shard_id in self._handed_over:
            return
        shard = self._shards.setdefault(shard_id, _Shard())
        keys = receipt["keys"]
        new = keys if shard.keys.isdisjoint(keys) else [k for k in keys if k not in shard.keys]
        if not new:
            return
        placeholders, errors = receipt["none_keys"], receipt["error_keys"]
        if len(new) < len(keys):
            fresh = set(new)
            placeholders, errors = [k for k in placeholders if k in fresh], [k for k in errors if k in fresh]
        shard.keys.update(new)
        shard.files.append(receipt["file"])
        shard.rows.update(zip(receipt["last_items"], receipt["last_rows"]))
        frames = len(new) - len(placeholders)
        shard.frames += frames
        shard.errors += len(errors)
        self.on_rows(frames, len(errors))
        if len(shard.rows) == self.items[shard_id] and len(shard.keys) == sum(shard.rows.values()):
            self._handed_over.add(shard_id)
            self.publisher.submit(shard_id, shard.files, self.items[shard_id])

    def _settle(self, ended: list[tuple[str, Failure | None]]) -> None:
        """Forget published shards; keep failed ones, whose rows still count as uncommitted."""
        for shard_id, error in ended:
            if error is None:
                del self._shards[shard_id]
                self.on_commit(shard_id)
            else:
                self.failures[shard_id] = error

    def waiting(self) -> str:
        """What the run waits for, in one phrase: shards with rows still to come, and shards being published."""
        if not self._shards and not self._handed_over:
            return "the first results (inputs decoding, model actors starting)"
        publishing = len(self._handed_over & self._shards.keys()) - len(self.failures)
        arriving = len(self._shards) - publishing - len(self.failures)
        return f"{arriving} shard(s) with rows in flight, {publishing} being published"

    def uncommitted_counts(self) -> tuple[int, int]:
        """(frames, errors) received for shards not committed: progress to take back when they are redone."""
        return sum(s.frames for s in self._shards.values()), sum(s.errors for s in self._shards.values())
