"""``benchmarks/throughput.py`` runs to its table, so that it runs as is on a GPU machine."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_benchmark_measures_every_path_it_reports(two_photos: Path, run_benchmark, tmp_path: Path) -> None:
    """The Ray-free part (what a machine without Ray runs): every rate is measured."""
    report = tmp_path / "benchmark.json"
    finished = run_benchmark("throughput", "--images", str(two_photos), "--json", str(report), "--skip-job")
    results = json.loads(report.read_text())
    assert results["device"] == "cpu" and results["images"] == 2 and results["precision"] == "fp32"
    measured = ("predict", "bare_forward", "bare_forward_onnxruntime", "workers_in_process", "workers_device_decode")
    for path in (*measured, "workers_pipelined", "decode_per_core"):
        assert results[path] > 0, path
    assert "job_steady_state" not in results
    assert "predict" in finished.stdout and "job: not measured (--skip-job)" in finished.stdout
