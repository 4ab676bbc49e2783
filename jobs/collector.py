"""Exactly-once on the driver: result rows gathered per shard, duplicates dropped, a shard committed when whole.

Rows reach the driver in any order, and a task Ray retried may deliver some of them again. The collector keeps,
per shard in flight, the keys of the rows it has (work item, frame index) and what each item promised (its last
row says how many rows it gave), so a shard is committed exactly once, as soon as it is complete.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

from jobs.commit import ShardCommitter
from schemas.tables import STATUS_ERROR, STATUS_NONE


class ShardCollector:
    """Buffers result rows per shard and commits a shard once every one of its work items has delivered all of
    its rows (an item's last row says how many it gave; rows of one item may arrive in any order)."""

    def __init__(self, committer: ShardCommitter, items: dict[str, int], on_rows: Callable[[int, int], None]) -> None:
        self.committer = committer
        self.items = items
        self.on_rows = on_rows
        self._buffers: dict[str, list[pa.Table]] = defaultdict(list)
        self._received: dict[str, Counter] = defaultdict(Counter)
        self._expected: dict[str, dict[int, int]] = defaultdict(dict)
        self._seen: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self._done: set[str] = set()

    def add(self, results: pa.Table) -> None:
        results = self._unseen(results)
        frames = pc.sum(pc.not_equal(results.column("status"), STATUS_NONE)).as_py() or 0
        errors = pc.sum(pc.equal(results.column("status"), STATUS_ERROR)).as_py() or 0
        self.on_rows(frames, errors)
        for shard_id in pc.unique(results.column("shard_id")).to_pylist():
            part = results.filter(pc.equal(results.column("shard_id"), shard_id))
            self._buffers[shard_id].append(part)
            self._received[shard_id].update(part.column("item").to_pylist())
            for item, rows in zip(part.column("item").to_pylist(), part.column("item_rows").to_pylist()):
                if rows:
                    self._expected[shard_id][item] = rows
            if self._complete(shard_id):
                self._commit(shard_id)

    def _unseen(self, results: pa.Table) -> pa.Table:
        """Drop rows already received or of committed shards (a retried task that re-delivers), so no frame is
        written twice. Keys are kept per shard in flight only, so memory stays bounded by the shards in flight."""
        mask = []
        columns = ("shard_id", "item", "frame_index")
        for shard_id, item, frame_index in zip(*(results.column(c).to_pylist() for c in columns)):
            if shard_id in self._done:
                mask.append(False)
                continue
            seen = self._seen[shard_id]
            mask.append((item, frame_index) not in seen)
            seen.add((item, frame_index))
        return results if all(mask) else results.filter(pa.array(mask))

    def _complete(self, shard_id: str) -> bool:
        expected = self._expected[shard_id]
        received = self._received[shard_id]
        return len(expected) == self.items[shard_id] and all(received[i] == n for i, n in expected.items())

    def _commit(self, shard_id: str) -> None:
        """Commit, then forget the shard: if the commit raises, its rows still count as uncommitted."""
        self.committer.commit(shard_id, pa.concat_tables(self._buffers[shard_id]), items=self.items[shard_id])
        del self._buffers[shard_id], self._received[shard_id], self._expected[shard_id], self._seen[shard_id]
        self._done.add(shard_id)

    def uncommitted_counts(self) -> tuple[int, int]:
        """(frames, errors) received for shards never committed: progress to take back when they are redone."""
        tables = [t for parts in self._buffers.values() for t in parts]
        if not tables:
            return 0, 0
        status = pa.concat_tables(tables).column("status")
        frames = pc.sum(pc.not_equal(status, STATUS_NONE)).as_py() or 0
        return frames, pc.sum(pc.equal(status, STATUS_ERROR)).as_py() or 0
