"""``python -m tests.support.paused_iceberg PAUSED DETECT_ARGS…``: ``python -m jobs.detect DETECT_ARGS…`` whose first
Iceberg commit to ``frames`` never comes. The publish commits ``detections`` for every committed shard the table
lacks, then, where it would commit ``frames``, creates the file ``PAUSED`` and blocks, so that the test can kill
the driver (``kill -9``) between a shard's marker and its Iceberg commit, at the widest point: after the one table's
commit, before the other's. The run publishes only at its start and end here (as a run of a few shards does), so
the pause comes once every shard has its marker. No pause in the job's own code, no sleep the test waits out."""

from __future__ import annotations

import math
import os
import sys
import threading
from pathlib import Path

from pyiceberg.table import Table

import jobs.commit.iceberg
from common.storage import Location
from jobs.cli import detect_main
from schemas import layout
from tables import publish
from tables.changes import Change, commit

UNKILLED_S = 300
"""How long the driver waits to be killed before it ends by itself: a test that failed before its kill leaves no
driver behind."""


def pause_frames_commit(paused: Path) -> None:
    """From now on, a publish that reaches ``frames`` creates ``paused`` and blocks there; batches off."""
    jobs.commit.iceberg.EVERY_SHARDS, jobs.commit.iceberg.EVERY_S = sys.maxsize, math.inf

    def paused_commit(table: Table, out: Location, change: Change) -> int:
        if table.name()[-1] == layout.FRAMES:
            paused.touch()
            threading.Event().wait(UNKILLED_S)
            os._exit(1)
        return commit(table, out, change)

    publish.commit = paused_commit


if __name__ == "__main__":
    pause_frames_commit(Path(sys.argv[1]))
    sys.exit(detect_main(sys.argv[2:], prog="python -m jobs.detect"))
