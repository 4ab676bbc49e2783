"""Publishing complete shards as Ray tasks, so that reading staged rows back and writing the tables' files
happens on the cluster while the driver goes on collecting receipts.

A publish task is small (one shard's boxes) and mostly waits on storage, so it reserves no CPU and is spread
over the cluster. Ray redoes it if its worker dies (``ShardCommitter.publish`` is idempotent); an error it
raises (a shard found incomplete) is reported, not retried: the pipeline's retry redoes the shard.
"""

from __future__ import annotations

import time

import ray

from jobs.commit.committer import ShardCommitter
from jobs.failures import Failure, Stalled, classify
from jobs.stopping import end_tasks
from schemas.manifest import ShardCommit

PUBLISH_RETRIES = 3
POLL_INTERVAL_S = 0.25
"""How often ``finished`` asks Ray about running tasks: each asking costs the driver more than handling a receipt,
and a shard's commit being noticed a quarter second late changes nothing."""


@ray.remote(num_cpus=0, scheduling_strategy="SPREAD", max_retries=PUBLISH_RETRIES)
def _publish(committer: ShardCommitter, shard_id: str, files: list[str], items: int) -> ShardCommit:
    return committer.publish(shard_id, files, items)


class Publisher:
    """Starts a publish task per complete shard and tells which have ended, and how."""

    def __init__(self, committer: ShardCommitter, stall_timeout_s: float) -> None:
        self._committer = ray.put(committer)
        self.stall_timeout_s = stall_timeout_s
        self._running: dict[ray.ObjectRef, str] = {}
        self._polled = 0.0

    def submit(self, shard_id: str, files: list[str], items: int) -> None:
        self._running[_publish.remote(self._committer, shard_id, files, items)] = shard_id

    def finished(self, wait: bool = False) -> list[tuple[str, Failure | None]]:
        """(shard, None when committed else the failure) of the tasks that have ended since last told (asked at
        most every ``POLL_INTERVAL_S``); with ``wait``, of all of them, once they all have. Waiting raises
        ``Stalled`` when none ends for ``stall_timeout_s``: a task that never returns does not hold the job."""
        if not self._running or (not wait and time.monotonic() - self._polled < POLL_INTERVAL_S):
            return []
        self._polled = time.monotonic()
        if not wait:
            ready, _ = ray.wait(list(self._running), num_returns=len(self._running), timeout=0, fetch_local=False)
            return self._ended(ready)
        ended = []
        while self._running:
            ready, _ = ray.wait(list(self._running), timeout=self.stall_timeout_s, fetch_local=False)
            if not ready:
                raise Stalled(
                    f"no publish task ended for {self.stall_timeout_s:g} s; waiting for shards {self.waiting()}"
                )
            ended += self._ended(ready)
        return ended

    def stop(self, grace_s: float) -> list[tuple[str, Failure | None]]:
        """(shard, None when committed else the failure) of every task running, once each has ended within
        ``grace_s`` or been cancelled after it (a stopped run: ``jobs.stopping``). A cancelled shard stays
        uncommitted, for the next attempt."""
        ended, cancelled = end_tasks(list(self._running), grace_s)
        stopped = Failure(infrastructure=True, cause="publishing cancelled: the run was stopped")
        return self._ended(ended) + [(self._running.pop(ref), stopped) for ref in cancelled]

    def waiting(self) -> str:
        """The shards being published, in one short phrase."""
        return ", ".join(sorted(self._running.values())[:5]) + (" …" if len(self._running) > 5 else "")

    def _ended(self, ready: list[ray.ObjectRef]) -> list[tuple[str, Failure | None]]:
        ended: list[tuple[str, Failure | None]] = []
        for ref in ready:
            shard_id = self._running.pop(ref)
            try:
                ray.get(ref)
                ended.append((shard_id, None))
            except Exception as exc:  # the shard stays uncommitted; the pipeline's retry redoes it
                ended.append((shard_id, classify(exc)))
        return ended
