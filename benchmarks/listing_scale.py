"""How listing and planning scale: time, Python heap peak and S3 requests for a collection of N objects.

    python -m uv run --frozen python benchmarks/listing_scale.py [--objects 20000]

Puts N small objects under a prefix of a local S3 API server (moto, reached through the test suite's relaying
proxy, which counts requests) and the same N files in a local folder, then times ``list_sources`` and
``Plan.from_listing`` on each and reports peak traced memory per object.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jobs.planning.listing import list_sources  # noqa: E402
from jobs.planning.plan import Plan  # noqa: E402
from tests.support.s3 import FlakyProxy, s3_client, s3_storage_options, start_moto_server  # noqa: E402


def _measure(label: str, source: str, options: dict) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    listing = list_sources([source], options)
    listed = time.perf_counter() - started
    plan = Plan.from_listing(listing, shard_size=1000, run_date="2026-01-01")
    planned = time.perf_counter() - started - listed
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(listing)
    print(
        f"{label:<6} {n:>8} objects  list {listed:6.2f}s  plan {planned:5.2f}s  "
        f"peak heap {peak / 2**20:7.1f} MiB ({peak / max(n, 1):5.0f} B/object)  "
        f"{plan.table.nbytes / max(n, 1):4.0f} B/object in the plan"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20000)
    args = parser.parse_args()
    server, endpoint = start_moto_server()
    proxy = FlakyProxy(endpoint)
    client = s3_client(endpoint)
    client.create_bucket(Bucket="scale")
    keys = [f"photos/day {i % 50:02d}/img_{i:07d}.jpg" for i in range(args.objects)]
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda k: client.put_object(Bucket="scale", Key=k, Body=b"x"), keys))
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            path = Path(tmp) / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        _measure("local", str(Path(tmp) / "photos"), {})
    before = proxy.requests
    _measure("s3", "s3://scale/photos", s3_storage_options(proxy.url))
    print(
        f"s3 requests for the listing: {proxy.requests - before} "
        f"({args.objects / max(proxy.requests - before, 1):.0f} objects per request)"
    )
    proxy.close()
    server.stop()


if __name__ == "__main__":
    main()
