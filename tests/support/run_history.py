"""Earlier runs of a job written with the job's own code (plan, commit markers, manifest) but without running
anything: the history ``--incremental`` looks back over, as large as a test or a benchmark wants it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Collection, Literal

import pyarrow as pa

from jobs.commit import ShardCommitter
from jobs.listing import Listing
from jobs.planning import Plan
from jobs.run_store import RunStore
from jobs.segments import Segment
from schemas.manifest import ModelInfo, PlanInfo, RunManifest, ShardCommit
from schemas.tables import LISTING_SCHEMA

FINGERPRINT = "job-fingerprint0"
MODEL_FINGERPRINT = "model-fingerpri0"
FIRST_RUN = datetime(2025, 12, 1, tzinfo=timezone.utc)


def images(numbers: range, kind: str = "image", edition: int = 0) -> Listing:
    """Inputs number ``numbers`` of a synthetic bucket as listed (sorted by URI); a later ``edition`` of a file
    has another size and version, as a file written again has."""
    return Listing(
        pa.table(
            {
                "uri": [f"s3://camera-bucket/day-{n // 2400:03d}/img_{n:08d}.jpg" for n in numbers],
                "size": [100_000 + n % 7919 + edition for n in numbers],
                "source": ["camera-bucket"] * len(numbers),
                "kind": [kind] * len(numbers),
                "version": [f'"{n:024x}{edition:08x}"' for n in numbers],
            },
            schema=LISTING_SCHEMA,
        )
    )


def write_run(
    store: RunStore,
    inputs: Listing,
    hour: int,
    shard_size: int = 50,
    model_fingerprint: str = MODEL_FINGERPRINT,
    status: Literal["running", "completed", "failed"] = "completed",
    uncommitted: Collection[str] = (),
    videos: dict[str, list[Segment]] | None = None,
) -> tuple[RunManifest, Plan]:
    """A run planned ``hour`` hours after ``FIRST_RUN`` over ``inputs``: its plan, a commit marker for each of
    its shards but the ``uncommitted`` ones, and its manifest with ``status``, as the job leaves them."""
    now = FIRST_RUN + timedelta(hours=hour)
    run_id = RunStore.new_run_id(now)
    plan = Plan.from_listing(inputs, shard_size, now.strftime("%Y-%m-%d"), videos)
    plan.save(store.plan_location(run_id))
    for shard_id, items in plan.shard_sizes.items():
        if shard_id not in uncommitted:
            commit_shard(store, run_id, shard_id, items)
    manifest = RunManifest(
        run_id=run_id,
        fingerprint=FINGERPRINT,
        model_fingerprint=model_fingerprint,
        run_date=now.strftime("%Y-%m-%d"),
        status=status,
        config={},
        model=ModelInfo(
            name="yolo_nas_s",
            weights="coco",
            weights_sha256="ab" * 32,
            checkpoint_key="net",
            num_classes=80,
            class_names=[],
        ),
        plan=PlanInfo(
            inputs=plan.inputs,
            items=plan.table.num_rows,
            shards=len(plan.shard_sizes),
            shard_size=shard_size,
            plan_file=f"_runs/{run_id}/plan.parquet",
        ),
        shards={shard: "pending" if shard in uncommitted else "committed" for shard in plan.shard_sizes},
    )
    store.save(manifest)
    return manifest, plan


def commit_shard(store: RunStore, run_id: str, shard_id: str, items: int) -> None:
    """The commit marker of a shard of ``items`` images, where the job writes it, written last."""
    commit = ShardCommit(
        run_id=run_id,
        shard_id=shard_id,
        items=items,
        frames=items,
        ok=items,
        errors=0,
        detections=0,
        files=[],
        committed_at=FIRST_RUN.isoformat(),
    )
    ShardCommitter(store.out, run_id, ()).marker(shard_id).write_bytes_atomic(commit.model_dump_json().encode())
