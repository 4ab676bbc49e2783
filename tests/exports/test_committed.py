"""The one reader of committed rows: ``export`` and ``report`` see the same frames of an output, whichever runs
wrote them and whatever a killed run left behind."""

from __future__ import annotations

import io

import pytest

from exports.report import build_report
from exports.run import run_export
from schemas.export_config import ExportConfig
from tests.support.two_runs import RUN_A, RUN_B


@pytest.mark.parametrize("run_id", [None, RUN_A, RUN_B])
def test_export_and_report_count_the_same_frames(synthetic_output, tmp_path, run_id):
    config = ExportConfig(
        output=synthetic_output.path, format="coco", to=str(tmp_path / "coco"), run_id=run_id, include_errors=True
    )
    exported = run_export(config, stream=io.StringIO())
    counts = build_report(synthetic_output.path, run_id, 0, {}).stats.counts
    assert (exported.frames, exported.errors) == (counts.frames, counts.error)
    assert exported.boxes == counts.detections
    # Run A: 7 frames (one an error); run B: the 2 of its committed shard; both: A's 7 and B's new one (d).
    assert counts.frames == {None: 8, RUN_A: 7, RUN_B: 2}[run_id]
