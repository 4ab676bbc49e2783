"""The manifest of a run just planned: what it was asked, with which model and weights, and its plan
(``jobs.records.run_manifest`` brings it up to date as attempts end)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from jobs.planning.model_setup import ModelSetup
from jobs.planning.plan import Plan
from jobs.records.run_manifest import versions
from schemas import layout
from schemas.config import JobConfig
from schemas.manifest import ModelInfo, PlanInfo, RunManifest


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
