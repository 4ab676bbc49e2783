"""``benchmarks/throughput.py`` runs to its table: a GPU session, lent a machine for minutes, runs it as is."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_measures_every_path_it_reports(coco_images: list[Path], tmp_path: Path) -> None:
    """Two photos, the Ray-free part (what the GPU machine, which has no Ray, runs): every rate is measured."""
    images = tmp_path / "images"
    images.mkdir()
    for photo in coco_images[:2]:
        shutil.copy(photo, images / photo.name)
    report = tmp_path / "benchmark.json"
    finished = subprocess.run(
        [sys.executable, "benchmarks/throughput.py", "--images", str(images), "--json", str(report), "--skip-job"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    results = json.loads(report.read_text())
    assert results["device"] == "cpu" and results["images"] == 2 and results["precision"] == "fp32"
    for path in ("predict", "bare_forward", "workers_in_process", "workers_pipelined", "decode_per_core"):
        assert results[path] > 0, path
    assert "job_steady_state" not in results
    assert "predict" in finished.stdout and "job: not measured (--skip-job)" in finished.stdout
