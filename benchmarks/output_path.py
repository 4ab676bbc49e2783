"""How many frames per second the output path sustains, and how busy it keeps the driver: the real pipeline
and commit code, with the model replaced by a stand-in that answers instantly with realistic boxes.

    python -m uv run --frozen python benchmarks/output_path.py [--frames 20000] [--boxes 20] [--shard-size 1000]
        [--targets local,s3] [--latency-ms 20] [--write-workers 1,2,4] [--json out/output_path.json]

Work items are planned as the job plans images (one frame each, one output partition). A pool of stand-in
actors turns each batch of items into result rows (``schemas.tables.RESULTS_SCHEMA``) with about ``--boxes``
boxes per frame, taken from a pool made once, so the model costs nothing and whatever limits frames/s is the
path from results to committed shards. ``s3`` writes to a moto S3 server in its own process that delays every
request by ``--latency-ms`` (``benchmarks/slow_s3.py``), as a remote store does.

Frames/s counts from the moment a fifth of the frames have arrived to the last commit (the start-up of Ray's
worker processes excluded: steady state); the driver's CPU share is
its process's CPU time (all threads) over the same span: near 100 % means the driver is the limit. The
machine's CPU share says whether the machine as a whole was the limit instead (every core busy: on a small
machine the stand-in actors, the write tasks and the S3 server share the cores). Every run is checked: one
marker per shard and every frame once in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import slow_s3  # noqa: E402
from schemas.tables import BOX_TYPE, LISTING_SCHEMA, RESULTS_SCHEMA, STATUS_OK  # noqa: E402

CLASS_NAMES = tuple(f"class{i}" for i in range(80))
STAND_IN_ACTORS = 2
BATCH_SIZE = 64
WARM_UP = 0.2
"""Share of the frames before the clock starts: by then every stand-in actor, write and publish worker process
has started (a Ray worker's start costs seconds of CPU, which on a small machine would otherwise be measured as
output throughput)."""


class StandInModel:
    """The model stage's contract (a batch of planned images in, one result row per frame out) at no cost."""

    def __init__(self, boxes_per_frame: int) -> None:
        rng = np.random.default_rng(0)
        self.counts = rng.poisson(boxes_per_frame, 4096).astype(np.int32)
        n = int(self.counts.sum())
        corner = rng.uniform(0, 600, (n, 2)).astype(np.float32)
        size = rng.uniform(4, 200, (n, 2)).astype(np.float32)
        self.pool = pa.StructArray.from_arrays(
            [
                pa.array(rng.integers(0, 80, n).astype(np.int32)),
                pa.array(rng.uniform(0.25, 1, n).astype(np.float32)),
                pa.array(corner[:, 0]),
                pa.array(corner[:, 1]),
                pa.array(corner[:, 0] + size[:, 0]),
                pa.array(corner[:, 1] + size[:, 1]),
            ],
            fields=list(BOX_TYPE),
        )
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int32)

    def __call__(self, items: pa.Table) -> pa.Table:
        n = items.num_rows
        start = int(items.column("item")[0].as_py()) % (len(self.counts) - n)
        offsets = self.offsets[start : start + n + 1]
        boxes = pa.ListArray.from_arrays(pa.array(offsets - offsets[0]), self.pool.slice(offsets[0]))
        return pa.table(
            {
                **{name: items.column(name) for name in ("shard_id", "partition", "source_uri", "item")},
                "item_rows": pa.array(np.ones(n, np.int32)),
                "frame_index": pa.array(np.zeros(n, np.int64)),
                "timestamp_s": pa.nulls(n, pa.float64()),
                "width": pa.array(np.full(n, 640, np.int32)),
                "height": pa.array(np.full(n, 480, np.int32)),
                "status": pa.array([STATUS_OK] * n, pa.string()),
                "error": pa.nulls(n, pa.string()),
                "boxes": boxes,
            },
            schema=RESULTS_SCHEMA,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--boxes", type=int, default=20, help="boxes per frame on average")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--targets", default="local,s3")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every S3 request")
    parser.add_argument("--write-workers", default="1,2,4", help="write workers to try; several, comma-separated")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "output_path.json")
    args = parser.parse_args()

    from jobs.pipeline.ray_session import start_ray

    start_ray(None, num_cpus=8)
    server, endpoint = slow_s3.start(args.latency_ms) if "s3" in args.targets else (None, "")
    results = []
    try:
        for target in args.targets.split(","):
            for workers in (int(w) for w in args.write_workers.split(",")):
                with tempfile.TemporaryDirectory() as tmp:
                    out, options = _output(target, tmp, endpoint, f"bench-w{workers}")
                    server_pid = server.pid if server is not None and target == "s3" else None
                    result = _measure(out, options, args.frames, args.boxes, args.shard_size, workers, server_pid)
                    results.append({"target": target, "write_workers": workers, **result})
                    print(json.dumps(results[-1]), flush=True)
    finally:
        if server is not None:
            server.kill()
    _report(results, args, Path(args.json))


def _output(target: str, tmp: str, endpoint: str, name: str) -> tuple[str, dict[str, Any]]:
    if target == "local":
        return str(Path(tmp) / "out"), {}
    import boto3

    options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench"}
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
    ).create_bucket(Bucket=name)
    return f"s3://{name}/out", options


def _plan(frames: int, shard_size: int) -> Any:
    from jobs.planning.listing import Listing
    from jobs.planning.plan import Plan

    uris = [f"s3://photos/{i:07d}.jpg" for i in range(frames)]
    listing = pa.table(
        {
            "uri": uris,
            "size": pa.array([100_000] * frames, pa.int64()),
            "source": ["photos"] * frames,
            "kind": ["image"] * frames,
            "version": pa.nulls(frames, pa.string()),
        },
        schema=LISTING_SCHEMA,
    )
    return Plan.from_listing(Listing(listing), shard_size, "2026-12-03")


def _measure(
    out: str, options: dict[str, Any], frames: int, boxes: int, shard_size: int, workers: int, server: int | None
) -> dict:
    import ray

    from common.storage import location
    from jobs.commit.collector import ShardCollector
    from jobs.commit.committer import ShardCommitter
    from jobs.commit.publish import Publisher
    from jobs.pipeline.dataset import run_pipeline, with_writes

    plan = _plan(frames, shard_size)
    table = plan.table
    results = ray.data.from_blocks([table.slice(i, 256) for i in range(0, table.num_rows, 256)]).map_batches(
        StandInModel,
        batch_size=BATCH_SIZE,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=STAND_IN_ACTORS),
        fn_constructor_kwargs={"boxes_per_frame": boxes},
        num_cpus=0.5,
    )
    committer = ShardCommitter(location(out, options), "bench", CLASS_NAMES)
    clock = _Clock(frames, server)
    collector = ShardCollector(Publisher(committer), plan.shard_sizes, clock.tick)
    run_pipeline(with_writes(results, committer, workers), collector)
    span, driver_cpu, machine_cpu, server_cpu = clock.stop()
    _check(committer, plan)
    return {
        "frames": frames,
        "frames_per_s": round((frames - clock.first_frames) / span, 1),
        "driver_cpu_share": round(driver_cpu / span, 3),
        "machine_cpu_share": round(machine_cpu / span / psutil.cpu_count(), 3),
        "s3_server_cpu_share": round(server_cpu / span / psutil.cpu_count(), 3),
        "span_s": round(span, 2),
    }


class _Clock:
    """Starts once ``WARM_UP`` of the frames have arrived, stops at the end; CPU time of the driver process and of
    the machine over the same span."""

    def __init__(self, frames: int, server: int | None) -> None:
        self.process = psutil.Process()
        self.server = psutil.Process(server) if server is not None else None
        self.first_server = 0.0
        self.start_after = int(frames * WARM_UP)
        self.arrived = 0
        self.first_at: float | None = None
        self.first_cpu = 0.0
        self.first_busy = 0.0
        self.first_frames = 0

    def tick(self, frames: int, errors: int) -> None:
        self.arrived += frames
        if self.first_at is None and self.arrived >= self.start_after:
            self.first_at, self.first_cpu, self.first_busy = time.perf_counter(), self._cpu(), _busy()
            self.first_server = _cpu(self.server)
            self.first_frames = self.arrived

    def stop(self) -> tuple[float, float, float, float]:
        """Seconds since the clock started; CPU seconds of the driver, of the whole machine and of the S3 server
        (a remote store's work, not the job's) in that time."""
        assert self.first_at is not None, "no result arrived"
        span = time.perf_counter() - self.first_at
        return span, self._cpu() - self.first_cpu, _busy() - self.first_busy, _cpu(self.server) - self.first_server

    def _cpu(self) -> float:
        return _cpu(self.process)


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _busy() -> float:
    """CPU seconds the machine has spent on anything but waiting, over all cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _check(committer: Any, plan: Any) -> None:
    """One marker per shard and every planned frame once."""
    import pyarrow.dataset as ds

    commits = committer.markers.committed()
    assert set(commits) == set(plan.shard_sizes), "a shard was not committed"
    assert sum(c.frames for c in commits.values()) == plan.table.num_rows
    frames_root = committer.out.child("frames")
    written = ds.dataset(frames_root.path, filesystem=frames_root.fs, format="parquet").count_rows()
    assert written == plan.table.num_rows, f"{written} frames rows written for {plan.table.num_rows} frames"


def _report(results: list[dict], args: argparse.Namespace, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=1))
    print(f"\n{args.frames} frames, ~{args.boxes} boxes each, shards of {args.shard_size}, S3 +{args.latency_ms} ms")
    cores = psutil.cpu_count()
    print(f"| target | write workers | frames/s | driver CPU (one core) | machine CPU ({cores} cores) | S3 server |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['target']} | {r['write_workers']} | {r['frames_per_s']:,.0f} | {r['driver_cpu_share']:.0%} "
            f"| {r['machine_cpu_share']:.0%} | {r['s3_server_cpu_share']:.0%} |"
        )


if __name__ == "__main__":
    main()
