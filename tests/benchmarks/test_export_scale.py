"""``benchmarks/export_scale.py`` exports a synthetic output in each format it times and reports every size."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_export_benchmark_runs(run_benchmark, tmp_path: Path) -> None:
    report = tmp_path / "export.json"
    run_benchmark("export_scale", "--frames", "300", "--boxes", "3", "--shard-size", "100", "--json", str(report))
    results = json.loads(report.read_text())
    assert {r["format"] for r in results} == {"coco", "yolo"}, results
    for row in results:  # every ok frame and every box of the synthetic output was exported, and timed
        assert 290 <= row["exported_frames"] < 300 and row["boxes"] == row["detections"] > 0, row
        assert row["wall_s"] > 0 and row["peak_rss_mib"] > 0, row
