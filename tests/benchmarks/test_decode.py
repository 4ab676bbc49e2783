"""``benchmarks/decode.py`` times decode and letterbox both ways (and on the model's device) for each photo and
video size it is given."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_decode_benchmark_runs(run_benchmark, tmp_path: Path) -> None:
    report = tmp_path / "decode.json"
    sizes = ("--photos", "0.3,3", "--videos", "720p", "--frames", "6", "--repeat", "1")
    finished = run_benchmark("decode", *sizes, "--json", str(report))
    results = json.loads(report.read_text())
    assert [row["megapixels"] for row in results["photos"]] == [0.3, 3.0]
    assert [row["video"] for row in results["videos"]] == ["720p"]
    for row in results["photos"] + results["videos"]:
        assert row["exact"]["per_core"] > 0 and row["fast"]["node"] == 16 * row["fast"]["per_core"], row
    for row in results["photos"]:  # --decode device: the CPU's check and the device's decode, here on the CPU
        assert row["device"]["cpu_per_core"] > 0 and row["device"]["frames_per_s"] > 0, row
    assert finished.stdout.count("\n|---|") == 3, finished.stdout
