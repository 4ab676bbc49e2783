"""``benchmarks/tracking.py`` times the tracker alone at each size, one whole ``track_video``, and scores both
strides of the street scene."""

from __future__ import annotations

import json
from pathlib import Path


def test_the_tracking_benchmark_runs(run_benchmark, tmp_path: Path) -> None:
    report = tmp_path / "tracking.json"
    sizes = ("--frames", "60", "--objects", "2,6", "--video-frames", "90", "--shards", "3", "--seeds", "1")
    finished = run_benchmark("tracking", *sizes, "--json", str(report))
    results = json.loads(report.read_text())
    assert [(r["objects"], r["frames"]) for r in results["tracker"]] == [(2, 60), (6, 60)]
    assert all(r["frames_per_s"] > 0 and r["tracks"] > 0 for r in results["tracker"]), results["tracker"]
    video = results["track_video"]
    assert (video["frames"], video["shards"]) == (90, 3) and video["tracks"] > 0, video
    assert [q["stride"] for q in results["quality"]] == [1, 3]
    for q in results["quality"]:  # the street scene: 8 objects, tracked well enough to show a real score
        assert q["objects"] == 8 and 0.8 < q["idf1"] <= 1, q
    assert finished.stdout.count("\n|---|") == 3, finished.stdout
