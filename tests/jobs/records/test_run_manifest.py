"""The manifest brought up to date as an attempt ends: the run's status from its shards and how the attempt ended."""

from __future__ import annotations

import pytest

from jobs.records.run_manifest import finished
from schemas.manifest import Attempt, ModelInfo, PlanInfo, RunManifest, ShardCommit

SHARDS = ["00000", "00001"]


def _manifest() -> RunManifest:
    model = ModelInfo(
        name="yolo_nas_s", weights="w.pth", weights_sha256="0" * 64, checkpoint_key="net", num_classes=1,
        class_names=["dog"],
    )  # fmt: skip
    plan = PlanInfo(inputs=2, items=2, shards=2, shard_size=1, plan_file="_runs/r/plan.parquet")
    attempt = Attempt(started_at="2026-01-01T00:00:00+00:00", pending_items=2, committed_shards_before=0,
                      leftovers_removed=0)  # fmt: skip
    return RunManifest(
        run_id="r", fingerprint="f", run_date="2026-01-01", status="running", config={}, model=model, plan=plan,
        attempts=[attempt],
    )  # fmt: skip


def _commit(shard: str) -> ShardCommit:
    return ShardCommit(
        run_id="r", shard_id=shard, items=1, frames=1, ok=1, errors=0, detections=2, files=[], committed_at="now"
    )


@pytest.mark.parametrize(
    ("committed", "error", "stopped_by", "status"),
    [
        (SHARDS, None, None, "completed"),
        (SHARDS[:1], "2 shard(s) not committed", None, "failed"),
        (
            SHARDS[:1],
            "stopped by SIGTERM: 1 of 2 shards committed (1 by this attempt); the same command resumes the run",
            "SIGTERM",
            "interrupted",
        ),
        (SHARDS, None, "SIGINT", "completed"),  # the signal came once every shard was committed: nothing was lost
    ],
)
def test_the_status_says_how_the_attempt_ended(committed, error, stopped_by, status):
    manifest = _manifest()
    error_given = None if stopped_by else error  # a stopped attempt's error is made from its signal and commits
    attempt = manifest.attempts[-1].model_copy(
        update={"error": error_given, "stopped_by": stopped_by, "finished_at": "now", "wall_s": 1.0}
    )
    ended = finished(manifest, {s: _commit(s) for s in committed}, SHARDS, {}, attempt)
    assert (ended.status, ended.error, ended.attempts[-1].stopped_by) == (status, error, stopped_by)
    assert ended.attempts[-1].error == error
    assert ended.shards == {s: "committed" if s in committed else "pending" for s in SHARDS}
    assert RunManifest.model_validate_json(ended.model_dump_json()) == ended
