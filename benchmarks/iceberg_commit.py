"""What one Iceberg publish costs once the tables hold a long history: 1, 100, 1,000 shards already published.

    python3 -m uv run --frozen python benchmarks/iceberg_commit.py [--sizes 1,100,1000] [--batch 20] [--repeat 3]
        [--expire] [--json out/iceberg_commit.json]

For each size, a fresh output, an embedded SQLite catalog and a local warehouse. The shards are committed by the
job's own committer (``tests/support/outputs.py``' ``commit_run``: ``ShardCommitter``'s files and markers, and a
run manifest, which only that helper makes without a model), a run of ``--batch`` shards at a time, each batch
published as ``detect --iceberg`` publishes (one ``tables.publish.publish``, one snapshot per table), until the
tables hold the size. Then it times ``--repeat`` publishes of one new shard (a new run of new photos: the append
path) and ``--repeat`` re-detections (a newer run's shard answering the photos of an old shard: the same append
plus pyiceberg's copy-on-write delete of the rows it supersedes), and reports the median of each; with
``--expire``, after expiring every snapshot of the history but the current one (``tables.expiry``). Per size:
the snapshots of ``frames`` and the manifests its current snapshot lists (what a commit reads and rewrites), the
manifest lists, manifests and bytes in its metadata folder (``detections`` has as many), and the commit markers
in the output, all of which a publish lists. Prints a table and writes JSON. Results:
docs/performance.md#iceberg-commits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.storage import Location, location  # noqa: E402
from schemas import layout  # noqa: E402
from tables.catalog import open_catalog  # noqa: E402
from tables.expiry import expire  # noqa: E402
from tables.publish import publish  # noqa: E402
from tests.support.outputs import Frame, commit_run, run_id  # noqa: E402

NAMESPACE = "bench"
PHOTOS_PER_SHARD = 4
COLUMNS = ("shards", "append_s", "redetect_s", "deleted", "snapshots", "manifests", "lists", "manifest_files")
COLUMNS += ("metadata_kib", "markers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000", help="shards in the tables before the timed publish")
    parser.add_argument("--batch", type=int, default=20, help="shards per publish while the history is made")
    parser.add_argument("--repeat", type=int, default=3, help="timed publishes of each kind, their median reported")
    parser.add_argument("--expire", action="store_true", help="expire the history's snapshots before timing")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "iceberg_commit.json")
    args = parser.parse_args()
    results = []
    print("".join(f"{c:>15}" for c in COLUMNS))
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(_measure(Path(tmp), size, args.batch, args.repeat, args.expire))
            print(_line(results[-1]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


def _measure(tmp: Path, size: int, batch: int, repeat: int, expired: bool) -> dict:
    out = location(str(tmp / "out"))
    catalog = open_catalog(f"sqlite:///{tmp / 'catalog.db'}", (tmp / "warehouse").as_uri())
    began = time.perf_counter()
    for number, first in enumerate(range(0, size, batch)):
        _commit(out, run_id(1, f"h{number:05d}"), range(first, min(first + batch, size)))
        publish(out, catalog, NAMESPACE)
    history_s = time.perf_counter() - began
    if expired:
        expire(catalog, NAMESPACE, 0, datetime.now(timezone.utc))
    shape = _shape(tmp, out, catalog)  # what the timed publishes start from
    appends, redetections, deleted = [], [], []
    for n in range(repeat):
        _commit(out, run_id(1, f"n{n:05d}"), [size + n])
        appends.append(_timed(out, catalog)[0])
    for n in range(repeat):
        _commit(out, run_id(2, f"r{n:05d}"), [n * size // repeat], answered_again=True)
        seconds, done = _timed(out, catalog)
        redetections.append(seconds)
        deleted.append(done.deleted["frames"])
    return {
        "shards": size,
        "history_s": round(history_s, 1),
        "append_s": round(statistics.median(appends), 3),
        "redetect_s": round(statistics.median(redetections), 3),
        "deleted": min(deleted),
        **shape,
    }


def _commit(out: Location, run: str, shards: range | list[int], answered_again: bool = False) -> None:
    """A run committing ``shards`` (by number across the history: shard ``n`` answers photos of its own), each as
    a shard of its own; ``answered_again``: a newer run's answers, with other boxes."""
    score = 0.9 if answered_again else 0.6
    commit_run(
        out,
        run,
        {
            f"{i:05d}": [
                Frame(f"file:///data/cam{n % 10}/s{n:06d}-{p}.jpg", [("person", score, 1, 2, 30, 40)])
                for p in range(PHOTOS_PER_SHARD)
            ]
            for i, n in enumerate(shards)
        },
    )


def _timed(out: Location, catalog) -> tuple[float, object]:
    started = time.perf_counter()
    done = publish(out, catalog, NAMESPACE)
    seconds = time.perf_counter() - started
    assert done.units == {"frames": 1, "detections": 1}, done
    return seconds, done


def _shape(tmp: Path, out: Location, catalog) -> dict[str, int | float]:
    frames = catalog.load_table(f"{NAMESPACE}.{layout.FRAMES}")
    snapshot = frames.current_snapshot()
    files = list((tmp / "warehouse" / NAMESPACE / layout.FRAMES / "metadata").iterdir())
    lists = [f for f in files if f.name.startswith("snap-")]
    return {
        "snapshots": len(frames.snapshots()),
        "manifests": len(snapshot.manifests(frames.io)) if snapshot else 0,
        "lists": len(lists),
        "manifest_files": sum(f.suffix == ".avro" for f in files) - len(lists),
        "metadata_kib": round(sum(f.stat().st_size for f in files) / 1024),
        "markers": sum(layout.parse_marker(p.split(f"/{layout.RUNS}/", 1)[1]) is not None for p in _runs(out)),
    }


def _runs(out: Location) -> list[str]:
    """Every file under ``_runs``: the listing each publish makes, markers among it."""
    return out.fs.find(out.child(layout.RUNS).path)


def _line(row: dict) -> str:
    return "".join(f"{row[c]:>15}" for c in COLUMNS)


if __name__ == "__main__":
    main()
