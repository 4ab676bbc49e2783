"""``python -m tests.support.held_publish HELD DETECT_ARGS…``: ``python -m jobs.detect DETECT_ARGS…`` whose shards
after the first are never published: their publish task creates the file ``HELD`` and waits until it is cancelled.
A run stopped then is held inside its stop's grace for as long as the test wants (a publish that hangs, as on a
store that stopped answering), without any pause in the job's own code."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import ray

from jobs.cli import detect_main
from jobs.commit import publish
from jobs.commit.committer import ShardCommitter
from schemas.manifest import ShardCommit

FIRST_SHARD = "00000"


def hold_publishing(held: Path) -> None:
    """Publish tasks started from now on publish the first shard and hold every other one."""

    @ray.remote(num_cpus=0, max_retries=0)
    def held_publish(committer: ShardCommitter, shard_id: str, files: list[str], items: int) -> ShardCommit:
        # Defined here, not at the module's top, so Ray ships it to its worker by value, with ``held``.
        if shard_id != FIRST_SHARD:
            held.touch()
            threading.Event().wait()
        return committer.publish(shard_id, files, items)

    publish._publish = held_publish


if __name__ == "__main__":
    hold_publishing(Path(sys.argv[1]))
    sys.exit(detect_main(sys.argv[2:], prog="python -m jobs.detect"))
