"""``python -m tests.support.held_publish HELD DETECT_ARGS…``: ``python -m jobs.detect DETECT_ARGS…`` whose shards
after the first are held unpublished: their publish task creates the file ``HELD`` and waits until the test creates
``released(HELD)``, or until it is cancelled. A run stopped then is held inside its stop's grace for as long as the
test wants (a publish that hangs, as on a store that stopped answering), and a run can be made to last until the
test has done what it must do mid-run, without any pause in the job's own code."""

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


def released(held: Path) -> Path:
    """The file whose creation lets the held publishes go on."""
    return held.with_name(held.name + ".released")


def hold_publishing(held: Path) -> None:
    """Publish tasks started from now on publish the first shard and hold every other one until released; retried
    as the job's own are (a task lost with its node runs again)."""
    go = released(held)

    @ray.remote(num_cpus=0, scheduling_strategy="SPREAD", max_retries=publish.PUBLISH_RETRIES)
    def held_publish(committer: ShardCommitter, shard_id: str, files: list[str], items: int) -> ShardCommit:
        # Defined here, not at the module's top, so Ray ships it to its worker by value, with ``held``.
        if shard_id != FIRST_SHARD:
            held.touch()
            while not go.exists():
                threading.Event().wait(0.1)
        return committer.publish(shard_id, files, items)

    publish._publish = held_publish


if __name__ == "__main__":
    hold_publishing(Path(sys.argv[1]))
    sys.exit(detect_main(sys.argv[2:], prog="python -m jobs.detect"))
