"""How long ``--incremental`` takes to start on an output with a long history: N earlier runs, synthetic.

    python3 -m uv run --frozen python benchmarks/incremental_start.py [--runs 1000] [--inputs 100] [--new 100]
        [--shard-size 50] [--s3]

Writes N earlier runs of one job into a fresh output with the project's own code (``Plan.from_listing`` and
``Plan.save``, ``RunStore.save``, a commit marker per shard where ``ShardCommitter.marker`` puts it), as an
hourly schedule leaves them: each run planned ``--inputs`` new images and committed all of its shards. Then it
times what ``--incremental`` does before planning a new run, on a listing of every earlier input plus ``--new``
new ones: finding the run to resume (``RunStore.latest_with``) and dropping the answered inputs
(``new_or_changed``), three times:

- cold: the first incremental start on this output (nothing cached from earlier starts);
- one new run: again, after one more run committed its inputs without closing (a crashed run, so nothing was
  recorded for it when it ended);
- nothing new: again, right after.

Each start checks that exactly the new inputs are left. ``--s3`` writes the output to a local S3 API (moto,
reached through the test suite's relaying proxy) instead of a local folder and counts the requests each start
makes. Writing the history and the first start (which reads all of it) take most of the time. Results:
docs/performance.md#incremental-start.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.storage import Location, location  # noqa: E402
from jobs.planning.incremental import new_or_changed  # noqa: E402
from jobs.planning.listing import Listing  # noqa: E402
from jobs.records.run_store import RunStore  # noqa: E402
from tests.support.outputs import FINGERPRINT, MODEL_FINGERPRINT, history_run, images  # noqa: E402


def start(store: RunStore, listed: Listing) -> tuple[float, float, int]:
    """One incremental start: seconds finding the run to resume, seconds dropping answered inputs, inputs left."""
    started = time.perf_counter()
    previous = store.latest_with(FINGERPRINT)
    assert previous is not None and previous.status == "completed"
    found = time.perf_counter()
    left = new_or_changed(listed, store, MODEL_FINGERPRINT)
    return found - started, time.perf_counter() - found, len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="earlier runs")
    parser.add_argument("--inputs", type=int, default=100, help="inputs each earlier run committed")
    parser.add_argument("--new", type=int, default=100, help="inputs listed that no run has seen")
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--s3", action="store_true", help="write the output to a local S3 API and count requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.s3:
            _on_s3(args)
        else:
            _measure(args, location(str(Path(tmp) / "out")), lambda: 0)


def _on_s3(args: argparse.Namespace) -> None:
    from tests.support.s3 import FlakyProxy, s3_client, s3_storage_options, start_moto_server

    server, endpoint = start_moto_server()
    proxy = FlakyProxy(endpoint)
    s3_client(endpoint).create_bucket(Bucket="history")
    try:
        _measure(args, location("s3://history/out", s3_storage_options(proxy.url)), lambda: proxy.requests)
    finally:
        proxy.close()
        server.stop()


def _measure(args: argparse.Namespace, out: Location, requests: Callable[[], int]) -> None:
    store = RunStore(out)
    runs, inputs, new = args.runs, args.inputs, args.new
    began = time.perf_counter()

    def earlier_run(hour: int) -> None:
        history_run(store, images(range(hour * inputs, (hour + 1) * inputs)), hour, args.shard_size)

    with ThreadPoolExecutor(8 if args.s3 else 1) as pool:
        list(pool.map(earlier_run, range(runs)))
    print(f"wrote {runs} earlier runs of {inputs} inputs each in {time.perf_counter() - began:.1f}s ({out.uri})")

    old = runs * inputs
    rows = []
    for label, listed, expected in (
        ("cold", images(range(old + new)), new),
        ("one new run", images(range(old + 2 * new)), new),
        ("nothing new", images(range(old + 2 * new)), new),
    ):
        if label == "one new run":
            history_run(store, images(range(old, old + new)), runs, args.shard_size)
        before = requests()
        latest_s, answered_s, left = start(store, listed)
        assert left == expected, f"{label}: {left} inputs left, expected {expected}"
        rows.append((label, len(listed), latest_s, answered_s, requests() - before))

    print(f"\n{'start':<12} {'listed':>8} {'latest_with s':>14} {'new_or_changed s':>17} {'total s':>8}", end="")
    print(f" {'requests':>9}" if args.s3 else "")
    for label, listed_n, latest_s, answered_s, made in rows:
        print(f"{label:<12} {listed_n:>8} {latest_s:>14.2f} {answered_s:>17.2f} {latest_s + answered_s:>8.2f}", end="")
        print(f" {made:>9}" if args.s3 else "")


if __name__ == "__main__":
    main()
