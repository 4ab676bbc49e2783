"""``benchmarks/iceberg_commit.py`` builds each history, times both kinds of publish over it and reports every
size."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_iceberg_commit_benchmark_runs(run_benchmark, tmp_path: Path) -> None:
    report = tmp_path / "iceberg.json"
    args = ("--sizes", "1,3", "--batch", "2", "--repeat", "1", "--expire", "--json", str(report))
    run_benchmark("iceberg_commit", *args)
    results = json.loads(report.read_text())
    assert [row["shards"] for row in results] == [1, 3], results
    for row in results:
        assert row["append_s"] > 0 and row["redetect_s"] > 0, row
        assert row["deleted"] == 4 and row["markers"] == row["shards"], row  # the re-detection superseded a shard
    assert results[1]["snapshots"] == 1 and results[1]["lists"] == 2  # of two publishes, one snapshot kept
