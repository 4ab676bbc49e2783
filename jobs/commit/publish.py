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
from jobs.pipeline.failures import describe_failure
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

    def __init__(self, committer: ShardCommitter) -> None:
        self._committer = ray.put(committer)
        self._running: dict[ray.ObjectRef, str] = {}
        self._polled = 0.0

    def submit(self, shard_id: str, files: list[str], items: int) -> None:
        self._running[_publish.remote(self._committer, shard_id, files, items)] = shard_id

    def finished(self, wait: bool = False) -> list[tuple[str, str | None]]:
        """(shard, None when committed else the failure) of the tasks that have ended since last told (asked at
        most every ``POLL_INTERVAL_S``); with ``wait``, of all of them, once they all have."""
        if not self._running or (not wait and time.monotonic() - self._polled < POLL_INTERVAL_S):
            return []
        self._polled = time.monotonic()
        refs = list(self._running)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=None if wait else 0, fetch_local=False)
        ended: list[tuple[str, str | None]] = []
        for ref in ready:
            shard_id = self._running.pop(ref)
            try:
                ray.get(ref)
                ended.append((shard_id, None))
            except Exception as exc:  # the shard stays uncommitted; the pipeline's retry redoes it
                ended.append((shard_id, describe_failure(exc)))
        return ended
