"""The run manifest's content: made when a run is planned, brought up to date when an attempt ends."""

from __future__ import annotations

import platform
from collections import Counter
from datetime import datetime, timezone
from importlib import metadata

from jobs.pipeline.model_setup import ModelSetup
from jobs.planning.plan import Plan
from schemas import layout
from schemas.config import JobConfig
from schemas.manifest import Attempt, Counts, ModelInfo, PlanInfo, RunManifest, ShardCommit

VERSIONED_PACKAGES = ("yolonas-batch", "super-gradients", "torch", "ray", "pyarrow")


def new_manifest(
    config: JobConfig, setup: ModelSetup, run_id: str, now: datetime, plan: Plan, skipped: Counter
) -> RunManifest:
    """The manifest of a run just planned: what it was asked, with which model and weights, and its plan."""
    return RunManifest(
        run_id=run_id,
        fingerprint=config.fingerprint(setup.weights.sha256),
        model_fingerprint=config.model_fingerprint(setup.weights.sha256),
        run_date=now.strftime("%Y-%m-%d"),
        status="running",
        config=config.public_dump(),
        model=ModelInfo(
            name=config.model,
            weights=setup.weights.source,
            weights_sha256=setup.weights.sha256,
            checkpoint_key=setup.weights.checkpoint_key,
            num_classes=setup.weights.num_classes,
            class_names=list(setup.class_names),
            precision=config.precision,
            license=setup.weights.license,
        ),
        plan=PlanInfo(
            inputs=plan.inputs,
            items=plan.table.num_rows,
            shards=len(plan.shard_sizes),
            shard_size=config.shard_size,
            plan_file=layout.plan(run_id),
            skipped=dict(skipped),
        ),
        timings={"created_at": now.isoformat(timespec="seconds")},
        versions=versions(),
    )


def finished(
    manifest: RunManifest, commits: dict[str, ShardCommit], plan: Plan, failed: dict[str, str], attempt: Attempt
) -> RunManifest:
    """The manifest once ``attempt`` (the last one) has ended: counts from the commit markers, the state of every
    shard, and the run's status (completed only when every shard is committed and the attempt had no error)."""
    counts = Counts()
    kinds: Counter = Counter()
    for commit in commits.values():
        counts.frames += commit.frames
        counts.ok += commit.ok
        counts.error += commit.errors
        counts.detections += commit.detections
        kinds.update(commit.error_kinds)
    counts.error_kinds = dict(kinds)
    shards = {s: ("committed" if s in commits else "failed" if s in failed else "pending") for s in plan.shard_sizes}
    complete = all(state == "committed" for state in shards.values())
    return manifest.model_copy(
        update={
            "counts": counts,
            "shards": shards,
            "status": "completed" if complete and attempt.error is None else "failed",
            "error": attempt.error,
            "failed_shards": failed,
            "attempts": [*manifest.attempts[:-1], attempt],
            "timings": {**manifest.timings, "last_finished_at": attempt.finished_at, "last_wall_s": attempt.wall_s},
        }
    )


def versions() -> dict[str, str]:
    """Python's and the key packages' versions, so a run's numbers can be told apart from another build's."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
