"""Job outputs without a model or Ray, committed by the job's own code, for the export's tests and benchmark.

Rows go through ``jobs.commit.ShardCommitter`` (the job's split into ``frames``/``detections``, its partitions,
file names and markers) and the manifest through ``jobs.run_store.RunStore``, so the layout is the job's by
construction, locally or on S3. ``commit_run`` takes frames spelled out (``tests.support.job_output.Frame``);
``random_run`` makes a large run fast (numpy, one shard at a time) for scale.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyarrow as pa

from jobs.commit import ShardCommitter
from jobs.listing import media_kind
from jobs.run_store import RunStore
from jobs.storage import Location
from schemas.manifest import Counts, ModelInfo, PlanInfo, RunManifest
from schemas.tables import BOX_TYPE, RESULTS_SCHEMA, STATUS_ERROR, STATUS_OK
from tests.support.job_output import Frame

CLASS_NAMES = ("person", "car", "truck", "dog")
VIDEO_FPS = 25.0


def run_id(day: int, suffix: str = "aaaaaa") -> str:
    """A run id of the job's form, ``YYYYMMDDTHHMMSSZ-xxxxxx``: a later ``day`` sorts later."""
    return f"202601{day:02d}T080000Z-{suffix}"


def commit_run(
    out: Location,
    run: str,
    shards: dict[str, list[Frame]],
    *,
    class_names: Sequence[str] = CLASS_NAMES,
    uncommitted: frozenset[str] = frozenset(),
    source: str = "photos",
) -> RunManifest:
    """One run's shards and manifest; shards named in ``uncommitted`` keep their files but lose their marker,
    as a killed run leaves them."""
    committer = ShardCommitter(out, run, tuple(class_names))
    partition = f"run_date={_run_date(run)}/source={source}"
    counts = Counts()
    for shard_id, frames in shards.items():
        keys = {"shard_id": shard_id, "partition": partition, "item_rows": 1}
        rows = [{**keys, "item": i, **_row(frame, class_names)} for i, frame in enumerate(frames)]
        table = pa.Table.from_pylist(rows, schema=RESULTS_SCHEMA)
        commit = committer.commit(shard_id, table, items=len(frames))
        _count(counts, commit.frames, commit.ok, commit.errors, commit.detections)
        if shard_id in uncommitted:
            committer.marker(shard_id).fs.rm_file(committer.marker(shard_id).path)
    sizes = {s: len(f) for s, f in shards.items()}
    return _save_manifest(out, run, class_names, shards=sizes, counts=counts, pending=uncommitted)


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
    many, so some frames have none), every ``error_every``-th frame an error row."""
    rng = np.random.default_rng(seed)
    committer = ShardCommitter(out, run, tuple(class_names))
    partition = f"run_date={_run_date(run)}/source=photos"
    counts = Counts()
    shards = {}
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
        commit = committer.commit(shard_id, table, items=n)
        _count(counts, commit.frames, commit.ok, commit.errors, commit.detections)
        shards[shard_id] = n
    return _save_manifest(out, run, class_names, shards=shards, counts=counts, shard_size=shard_size)


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


def _count(counts: Counts, frames: int, ok: int, errors: int, detections: int) -> None:
    counts.frames += frames
    counts.ok += ok
    counts.error += errors
    counts.detections += detections


def _save_manifest(
    out: Location,
    run: str,
    class_names: Sequence[str],
    *,
    shards: dict[str, int],
    counts: Counts,
    shard_size: int = 10,
    pending: frozenset[str] = frozenset(),
) -> RunManifest:
    manifest = RunManifest(
        run_id=run,
        fingerprint="synthetic",
        run_date=_run_date(run),
        status="completed",
        config={"sources": ["synthetic"]},
        model=ModelInfo(
            name="yolo_nas_s",
            weights="synthetic.pth",
            weights_sha256="5e" * 32,
            checkpoint_key="net",
            num_classes=len(class_names),
            class_names=list(class_names),
        ),
        plan=PlanInfo(
            inputs=sum(shards.values()),
            items=sum(shards.values()),
            shards=len(shards),
            shard_size=shard_size,
            plan_file=f"_runs/{run}/plan.parquet",
        ),
        counts=counts,
        shards={shard: "pending" if shard in pending else "committed" for shard in shards},
    )
    RunStore(out).save(manifest)
    return manifest


def _run_date(run: str) -> str:
    return f"{run[:4]}-{run[4:6]}-{run[6:8]}"
