"""Which run a command goes on with: the unfinished run of the same job, resumed with its saved plan, or a new
run planned from the listing (for ``--incremental``, from the inputs earlier runs have not answered)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TextIO

import pyarrow.compute as pc

from jobs.planning.incremental import new_or_changed
from jobs.planning.listing import Listing
from jobs.planning.model_setup import ModelSetup
from jobs.planning.plan import Plan
from jobs.planning.planned_manifest import new_manifest
from jobs.planning.segments import plan_videos
from jobs.records.run_store import RunStore
from schemas.config import JobConfig
from schemas.manifest import RunManifest
from workers.video import Sampling


@dataclass(frozen=True)
class Chosen:
    manifest: RunManifest
    plan: Plan
    resumed: bool


def resume_or_plan(
    config: JobConfig, setup: ModelSetup, listing: Listing, store: RunStore, sampling: Sampling, stream: TextIO
) -> Chosen:
    """The last run of the same job when it is to be resumed (always, unless ``--incremental`` finds it
    finished), else a new run planned from the listing, its plan saved before any work starts."""
    previous = store.latest_with(config.fingerprint(setup.weights.sha256))
    if previous is not None and not (config.incremental and previous.status != "running"):
        plan = Plan.load(store.plan_location(previous.run_id))
        new, gone = plan.drift(listing)
        if new or gone:
            print(
                f"note: resuming run {previous.run_id} with its saved plan; since then {new} inputs appeared and "
                f"{gone} disappeared (use --incremental for the new ones, --overwrite to plan afresh)",
                file=stream,
            )
        return Chosen(previous, plan, resumed=True)
    if config.incremental:
        listed = len(listing)
        listing = new_or_changed(listing, store, config.model_fingerprint(setup.weights.sha256))
        print(f"incremental: {len(listing)} of {listed} inputs are new or changed", file=stream)
    now = datetime.now(timezone.utc)
    run_id = RunStore.new_run_id(now)
    videos = plan_videos(
        pc.filter(listing.table.column("uri"), pc.equal(listing.table.column("kind"), "video")).to_pylist(),
        sampling,
        config.video_segment_frames,
        config.storage_options,
    )
    plan = Plan.from_listing(listing, config.shard_size, now.strftime("%Y-%m-%d"), videos)
    plan.save(store.plan_location(run_id))
    return Chosen(new_manifest(config, setup, run_id, now, plan, listing.skipped), plan, resumed=False)
