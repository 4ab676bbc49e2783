"""Job outputs made without a model or Ray, written by the job's own code: for what a real run cannot easily be
made to write (two runs over one input, a shard left uncommitted, hostile class names, inputs gone since the run,
a long history of scheduled runs) and for outputs as large as a benchmark wants.

Table files and commit markers come from ``ShardCommitter`` (the job's split into ``frames``/``detections``, its
partitions, file names and markers), the plan from ``Plan``, the manifest from ``new_manifest`` and ``finished``
(counts from the markers), saved by ``RunStore``: the layout is the job's by construction, locally or on S3.
Only the rows are made up.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Collection, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from common.storage import Location, location
from jobs.commit.committer import ShardCommitter
from jobs.planning.listing import Listing
from jobs.planning.model_setup import ModelSetup
from jobs.planning.plan import Plan
from jobs.planning.planned_manifest import new_manifest
from jobs.planning.segments import Segment
from jobs.records.run_manifest import finished
from jobs.records.run_store import RunStore
from schemas import layout
from schemas.config import JobConfig
from schemas.manifest import Attempt, RunManifest
from schemas.media import media_kind
from schemas.tables import BOX_TYPE, LISTING_SCHEMA, PLAN_SCHEMA, RESULTS_SCHEMA, STATUS_ERROR, STATUS_OK
from tests.support.memory_lease_store import holding_fence
from workers.detector import Thresholds
from workers.letterbox import LetterboxSpec
from workers.weights import Weights

CLASS_NAMES = ("person", "car", "truck", "dog")
VIDEO_FPS = 25.0
WEIGHTS = "s3://models/<weights>.pth"
"""The weights' name in the manifest: markup in it must never reach a page unescaped."""
WEIGHTS_SHA256 = "ab" * 32
LICENSE = "a <b>licence</b> line"


@dataclass(frozen=True)
class Frame:
    uri: str
    boxes: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    """(class name, score, x1, y1, x2, y2)."""
    error: str | None = None
    index: int = 0
    width: int = 64
    height: int = 48


def run_id(day: int, suffix: str = "aaaaaa", hour: int = 8) -> str:
    """A run id of the job's form, ``YYYYMMDDTHHMMSSZ-xxxxxx``, in January 2026: a later day or hour sorts later."""
    return f"202601{day:02d}T{hour:02d}0000Z-{suffix}"


def commit_run(
    out: Location | Path | str,
    run: str,
    shards: dict[str, list[Frame]],
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    uncommitted: Collection[str] = (),
    source: str = "photos",
    epoch: int = 0,
) -> RunManifest:
    """One run of ``shards`` (shard id -> its frames, one work item each), committed shard by shard, and its
    manifest. Shards named in ``uncommitted`` keep their table files but lose their marker, as a killed run
    leaves them. ``epoch``: the lease epoch it writes under (0: names from before epochs)."""
    out = out if isinstance(out, Location) else location(str(out))
    committer = ShardCommitter(out, run, tuple(class_names), holding_fence(out, run, epoch) if epoch else None)
    partition = layout.partition(_run_date(run), source)
    results, items = [], 0
    for shard_id, frames in shards.items():
        keys = {"shard_id": shard_id, "partition": partition, "item_rows": 1}
        rows = [{**keys, "item": items + i, **_row(frame, class_names)} for i, frame in enumerate(frames)]
        items += len(frames)
        results.append(pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA))
        committer.commit(shard_id, results[-1], items=len(frames))
        if shard_id in uncommitted:
            committer.markers.marker(shard_id, committer.epoch).fs.rm_file(
                committer.markers.marker(shard_id, committer.epoch).path
            )
    return save_run(committer, _plan_of(pa.concat_tables(results)), class_names)


def random_run(
    out: Location,
    run: str,
    frames: int,
    *,
    boxes_per_frame: int = 20,
    shard_size: int = 1000,
    error_every: int = 200,
    folders: int = 50,
    class_names: Sequence[str] = CLASS_NAMES,
    width: int = 1280,
    height: int = 720,
    seed: int = 0,
) -> RunManifest:
    """``frames`` still images in ``folders`` folders, ``boxes_per_frame`` boxes each on average (0 to twice as
    many, so some frames have none), every ``error_every``-th frame an error row; made fast (numpy, one shard at
    a time) for scale."""
    rng = np.random.default_rng(seed)
    committer = ShardCommitter(out, run, tuple(class_names))
    partition = layout.partition(_run_date(run), "photos")
    plans = []
    for number, start in enumerate(range(0, frames, shard_size)):
        shard_id = f"{number:05d}"
        n = min(shard_size, frames - start)
        index = np.arange(start, start + n)
        errors = index % error_every == error_every - 1
        per_frame = np.where(errors, 0, rng.integers(0, 2 * boxes_per_frame + 1, n))
        offsets = np.concatenate([[0], np.cumsum(per_frame)]).astype(np.int32)
        total = int(offsets[-1])
        x1, y1 = rng.uniform(0, width - 20, total), rng.uniform(0, height - 20, total)
        x2 = np.minimum(x1 + rng.uniform(4, 400, total), width)
        y2 = np.minimum(y1 + rng.uniform(4, 300, total), height)
        boxes = pa.StructArray.from_arrays(
            [
                pa.array(rng.integers(0, len(class_names), total), pa.int32()),
                pa.array(rng.uniform(0.25, 1.0, total), pa.float32()),
                *(pa.array(v, pa.float32()) for v in (x1, y1, x2, y2)),
            ],
            fields=list(BOX_TYPE),
        )
        table = pa.table(
            {
                "shard_id": [shard_id] * n,
                "partition": [partition] * n,
                "source_uri": [f"file:///data/cam{i % folders:02d}/img{i:09d}.jpg" for i in index],
                "item": index,
                "item_rows": np.ones(n, np.int32),
                "frame_index": np.zeros(n, np.int64),
                "timestamp_s": pa.nulls(n, pa.float64()),
                "width": pa.array(np.where(errors, None, width).tolist(), pa.int32()),
                "height": pa.array(np.where(errors, None, height).tolist(), pa.int32()),
                "status": np.where(errors, STATUS_ERROR, STATUS_OK),
                "error": pa.array(np.where(errors, "decode: empty file", None).tolist(), pa.string()),
                "boxes": pa.ListArray.from_arrays(pa.array(offsets), boxes),
            },
            schema=RESULTS_SCHEMA,
        )
        committer.commit(shard_id, table, items=n)
        plans.append(_plan_of(table).table)
    return save_run(committer, Plan(pa.concat_tables(plans)), class_names, shard_size=shard_size)


# --- a history of scheduled runs, for --incremental ---------------------------------------------------------------

FIRST_RUN = datetime(2025, 12, 1, tzinfo=timezone.utc)
FINGERPRINT = "job-fingerprint0"
"""The job's fingerprint in every run of the history: the same command, run on a schedule."""
MODEL_FINGERPRINT = "model-fingerpri0"


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


def history_run(
    store: RunStore,
    inputs: Listing,
    hour: int,
    shard_size: int = 50,
    model_fingerprint: str = MODEL_FINGERPRINT,
    status: Literal["running", "completed", "failed"] = "completed",
    uncommitted: Collection[str] = (),
    videos: dict[str, list[Segment]] | None = None,
) -> tuple[RunManifest, Plan]:
    """A run planned ``hour`` hours after ``FIRST_RUN`` over ``inputs``: its plan, a commit marker (without rows)
    for each of its shards but the ``uncommitted`` ones, and its manifest with ``status``, as the job leaves
    them. Runs that agree on ``model_fingerprint`` answered the same inputs the same way."""
    now = FIRST_RUN + timedelta(hours=hour)
    run = RunStore.new_run_id(now)
    plan = Plan.from_listing(inputs, shard_size, now.strftime("%Y-%m-%d"), videos)
    for shard_id in plan.shard_sizes:
        if shard_id not in uncommitted:
            commit_shard(store, run, shard_id, plan.shard_sizes[shard_id])
    fingerprints = {"fingerprint": FINGERPRINT, "model_fingerprint": model_fingerprint}
    manifest = save_run(ShardCommitter(store.out, run, ()), plan, (), shard_size=shard_size, fingerprints=fingerprints)
    if manifest.status != status:  # a run still running, or one that failed with its shards committed
        manifest = manifest.model_copy(update={"status": status})
        store.save(manifest)
    return manifest, plan


def commit_shard(store: RunStore, run: str, shard_id: str, items: int) -> None:
    """The commit marker of a shard of ``items`` work items that gave no rows, where the job writes it."""
    ShardCommitter(store.out, run, ()).commit(shard_id, RESULTS_SCHEMA.empty_table(), items)


# --- the manifest --------------------------------------------------------------------------------------------------


def save_run(
    committer: ShardCommitter,
    plan: Plan,
    class_names: Sequence[str],
    *,
    shard_size: int = 10,
    fingerprints: dict[str, str] | None = None,
) -> RunManifest:
    """Save the run's plan and its manifest as the job writes them when an attempt ends: counts and shard states
    from the markers committed so far. ``fingerprints`` replace the config's (``fingerprint``,
    ``model_fingerprint``), for runs that must agree or differ on them."""
    out, run = committer.out, committer.run_id
    store = RunStore(out)
    plan.save(store.plan_location(run))
    now = datetime.strptime(run[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    config = JobConfig(sources=["synthetic"], output=out.uri, weights=WEIGHTS, shard_size=shard_size)
    manifest = new_manifest(config, _model(class_names), run, now, plan, Counter())
    manifest = manifest.model_copy(update=fingerprints or {})
    attempt = Attempt(
        started_at=now.isoformat(timespec="seconds"),
        pending_items=plan.table.num_rows,
        committed_shards_before=0,
        leftovers_removed=0,
        finished_at=now.isoformat(timespec="seconds"),
        wall_s=0.0,
    )
    manifest = finished(
        manifest.model_copy(update={"attempts": [attempt]}),
        committer.markers.committed(),
        plan.shard_sizes,
        {},
        attempt,
    )
    store.save(manifest)
    return manifest


def _model(class_names: Sequence[str]) -> ModelSetup:
    """What a run would have loaded: weights with ``class_names``' head (no parameters besides), hash and licence."""
    head = {"heads.head1.cls_pred.weight": torch.zeros(len(class_names) or 80, 1)}
    weights = Weights(head, WEIGHTS_SHA256, WEIGHTS, checkpoint_key="net", license=LICENSE)
    return ModelSetup(weights, LetterboxSpec(), tuple(class_names), Thresholds())


def _plan_of(results: pa.Table) -> Plan:
    """The plan that gave ``results``: each frame its own work item (a video frame as a range of one frame)."""
    video = pa.array([media_kind(uri) == "video" for uri in results.column("source_uri").to_pylist()], pa.bool_())
    index = results.column("frame_index")
    n = results.num_rows
    return Plan(
        pa.table(
            {
                "source_uri": results.column("source_uri"),
                "size": pa.nulls(n, pa.int64()),
                "version": pa.nulls(n, pa.string()),
                "kind": pc.if_else(video, "video", "image"),
                "item": results.column("item"),
                "frame_start": pc.if_else(video, index, 0),
                "frame_stop": pc.if_else(video, pc.add(index, 1), None),
                "fps": pc.if_else(video, VIDEO_FPS, None),
                "video_frames": pa.nulls(n, pa.int64()),
                "expected_frames": pa.array(np.ones(n, np.int64)),
                "shard_id": results.column("shard_id"),
                "partition": results.column("partition"),
            },
            schema=PLAN_SCHEMA,
        )
    )


def _row(frame: Frame, class_names: Sequence[str]) -> dict:
    is_video = media_kind(frame.uri) == "video"
    return {
        "source_uri": frame.uri,
        "frame_index": frame.index,
        "timestamp_s": frame.index / VIDEO_FPS if is_video else None,
        "width": None if frame.error else frame.width,
        "height": None if frame.error else frame.height,
        "status": STATUS_ERROR if frame.error else STATUS_OK,
        "error": frame.error,
        "boxes": [
            {"class_id": list(class_names).index(name), "score": score, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
            for name, score, x1, y1, x2, y2 in frame.boxes
        ],
    }


def _run_date(run: str) -> str:
    return f"{run[:4]}-{run[4:6]}-{run[6:8]}"
