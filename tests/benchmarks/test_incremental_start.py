"""``benchmarks/incremental_start.py`` writes a synthetic history and times three incremental starts over it, each
left with exactly the new inputs (the script checks that), on a local folder and on the S3 API."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("where", [[], ["--s3"]], ids=["local", "s3"])
def test_the_incremental_start_benchmark_runs(run_benchmark, where: list[str]) -> None:
    finished = run_benchmark("incremental_start", "--runs", "5", "--inputs", "10", "--new", "3", *where)
    rows = [line.split() for line in finished.stdout.splitlines() if line.startswith(("cold", "one new", "nothing"))]
    assert len(rows) == 3, finished.stdout
