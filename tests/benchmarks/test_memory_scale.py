"""``benchmarks/memory_scale.py`` runs the job at two input sizes and reports both peaks of each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.mark.timeout(300)  # two whole runs (45 s), after making the probe weights where it is the first to need them
def test_the_memory_benchmark_runs_both_sizes(
    two_photos: Path, run_benchmark, tmp_path: Path, probe_weights: Path, ray_cluster, monkeypatch
) -> None:
    """On the session's Ray (``RAY_ADDRESS``, as on a cluster), with the probe weights, whose model the benchmark
    leaves in the session's model cache for the job runs."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.get_runtime_context().gcs_address)
    report = tmp_path / "memory.json"
    options = ("--images", str(two_photos), "--scale", "2", "--weights", str(probe_weights), "--json", str(report))
    run_benchmark("memory_scale", *options)
    results = json.loads(report.read_text())
    assert [results[size]["frames"] for size in ("x1", "x2")] == [2, 4]
    for size in ("x1", "x2"):
        assert results[size]["peak_driver_rss_mib"] > 0 and results[size]["peak_object_store_mib"] > 0, size
