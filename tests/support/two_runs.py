"""Two runs over one input into one output, without a model (``tests.support.outputs``): what a real run cannot
easily be made to write, for every reader of committed rows (``export``, ``report``, the Iceberg tables).

Run A (older): photos a (2 boxes), b (none), sub/c, a video's frames 0, 5 and 10 and an error row; run B (newer): a
again (1 box) and d, plus an uncommitted shard whose files re-do b and add e (both must stay unseen). Newest rows:
a and d from B, the rest from A. Each run is committed by its own call, so a test can read the output between.
"""

from __future__ import annotations

from common.storage import Location
from tests.support.outputs import Frame, commit_run, run_id

RUN_A, RUN_B = run_id(1), run_id(2, "bbbbbb")
DATA = "file:///data"


def commit_older_run(out: Location) -> None:
    commit_run(
        out,
        RUN_A,
        {
            "00000": [
                Frame(f"{DATA}/photos/a.jpg", [("person", 0.9, 10, 20, 110, 220), ("car", 0.4, 1.5, 2.5, 30.25, 40)]),
                Frame(f"{DATA}/photos/b.jpg"),
                Frame(f"{DATA}/photos/sub/c.jpg", [("truck", 0.6, 0, 0, 64, 48)]),
            ],
            "00001": [
                Frame(f"{DATA}/clips/v.mp4", index=0, width=320, height=240),
                Frame(f"{DATA}/clips/v.mp4", [("dog", 0.8, 100, 50, 300, 200)], index=5, width=320, height=240),
                Frame(f"{DATA}/clips/v.mp4", index=10, width=320, height=240),
                Frame(f"{DATA}/photos/bad.jpg", error="decode: empty file"),
            ],
        },
    )


def commit_newer_run(out: Location) -> None:
    commit_run(
        out,
        RUN_B,
        {
            "00000": [
                Frame(f"{DATA}/photos/a.jpg", [("person", 0.95, 12, 22, 112, 222)]),
                Frame(f"{DATA}/photos/d.jpg", [("car", 0.7, 5, 5, 25, 25)]),
            ],
            "00001": [
                Frame(f"{DATA}/photos/b.jpg", [("person", 0.99, 1, 1, 2, 2)]),
                Frame(f"{DATA}/photos/e.jpg", [("person", 0.99, 1, 1, 2, 2)]),
            ],
        },
        uncommitted=frozenset({"00001"}),
    )
