"""The run's summary: what it says of the Iceberg tables, from the manifest alone."""

from __future__ import annotations

import io

import pytest

from common.storage import location
from jobs.console import summary
from schemas.manifest import Attempt, IcebergState, ModelInfo, PlanInfo, RunManifest


def _finished_run(iceberg: IcebergState) -> RunManifest:
    """A completed run of two shards, one of them committed, with ``iceberg``'s last publish."""
    return RunManifest(
        run_id="r", fingerprint="f", run_date="2026-01-01", status="failed", config={},
        model=ModelInfo(name="yolo_nas_s", weights="w.pth", weights_sha256="0" * 64, checkpoint_key="net",
                        num_classes=80, class_names=["person"] * 80),
        plan=PlanInfo(inputs=2, items=2, shards=2, shard_size=1, plan_file="_runs/r/plan.parquet"),
        attempts=[Attempt(started_at="2026-01-01T00:00:00+00:00", pending_items=2, committed_shards_before=0,
                          leftovers_removed=0, wall_s=1.0)],
        shards={"00000": "committed", "00001": "pending"}, iceberg=iceberg,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("state", "said"),
    [
        (IcebergState(namespace="cams", published_shards=1), "iceberg: cams.frames and cams.detections hold 1 of the "
         "run's 1 committed shards\n"),
        (IcebergState(namespace="cams", error="CommitFailedException: lost a race"), "iceberg: cams.frames and "
         "cams.detections hold 0 of the run's 1 committed shards; the last publish failed (CommitFailedException: "
         "lost a race): the next run or 'yolonas-batch iceberg' adds the rest\n"),
    ],
)  # fmt: skip
def test_the_summary_says_what_the_tables_hold_and_why_not_all(state: IcebergState, said: str) -> None:
    stream = io.StringIO()
    summary(stream, _finished_run(state), location("/data/out/cams"), exit_code=1)
    assert said in stream.getvalue()
