"""``benchmarks/decode_stage.py`` runs the decode stage alone on a local Ray, both ways, and counts every frame."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_decode_stage_benchmark_runs(run_benchmark, tmp_path: Path, ray_cluster, monkeypatch) -> None:
    """On the session's Ray (``RAY_ADDRESS``, as on a cluster): the stage's tasks, not a Ray's start."""
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.get_runtime_context().gcs_address)
    report = tmp_path / "decode_stage.json"
    finished = run_benchmark("decode_stage", "--copies", "1", "--repeat", "1", "--json", str(report))
    results = json.loads(report.read_text())
    assert results["frames"] == 38 and results["cpus"] >= 1
    assert set(results["frames_per_s"]) == {"a block a call", "a photo a call"}
    assert all(rate > 0 for rate in results["frames_per_s"].values()), results
    assert "frames/s" in finished.stdout
