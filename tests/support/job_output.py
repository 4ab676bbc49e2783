"""Job outputs made by hand, in the job's own layout and schemas: rows a real run cannot easily be made to write
(a shard left uncommitted, two runs over the same input, hostile class names, inputs gone since the run)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.manifest import ModelInfo, PlanInfo, RunManifest, ShardCommit
from schemas.tables import DETECTIONS_SCHEMA, FRAMES_SCHEMA, STATUS_ERROR, STATUS_OK

RUN_DATE = "2026-01-02"
PARTITION = f"run_date={RUN_DATE}/source=src"


@dataclass(frozen=True)
class Frame:
    uri: str
    boxes: list[tuple[str, float, float, float, float, float]] = field(default_factory=list)
    """(class name, score, x1, y1, x2, y2)."""
    error: str | None = None
    index: int = 0
    width: int = 64
    height: int = 48


def write_run(
    out: Path, run_id: str, shards: dict[str, list[Frame]], uncommitted: frozenset[str] = frozenset()
) -> None:
    """One run's manifest, and per shard its ``frames`` and ``detections`` files and (unless named in
    ``uncommitted``) its commit marker."""
    names = sorted({box[0] for frames in shards.values() for frame in frames for box in frame.boxes})
    for shard_id, frames in shards.items():
        _write_shard(out, run_id, shard_id, frames, names)
        if shard_id not in uncommitted:
            marker = ShardCommit(
                run_id=run_id,
                shard_id=shard_id,
                items=len(frames),
                frames=len(frames),
                ok=sum(f.error is None for f in frames),
                errors=sum(f.error is not None for f in frames),
                detections=sum(len(f.boxes) for f in frames),
                files=[],
                committed_at="2026-01-02T00:00:00+00:00",
            )
            _write_text(out / "_runs" / run_id / "shards" / f"{shard_id}.json", marker.model_dump_json())
    manifest = RunManifest(
        run_id=run_id,
        fingerprint="f",
        run_date=RUN_DATE,
        status="completed",
        config={},
        model=ModelInfo(
            name="yolo_nas_s",
            weights="s3://models/<weights>.pth",
            weights_sha256="ab" * 32,
            checkpoint_key="net",
            num_classes=len(names),
            class_names=names,
            license="a <b>licence</b> line",
        ),
        plan=PlanInfo(inputs=0, items=0, shards=len(shards), shard_size=10, plan_file=""),
    )
    _write_text(out / "_runs" / f"{run_id}.json", manifest.model_dump_json())


def _write_shard(out: Path, run_id: str, shard_id: str, frames: list[Frame], names: list[str]) -> None:
    keys = {
        "run_id": [run_id] * len(frames),
        "source_uri": [f.uri for f in frames],
        "frame_index": [f.index for f in frames],
        "timestamp_s": [None] * len(frames),
    }
    frames_table = pa.table(
        {
            **keys,
            "width": [f.width for f in frames],
            "height": [f.height for f in frames],
            "num_detections": [len(f.boxes) for f in frames],
            "status": [STATUS_OK if f.error is None else STATUS_ERROR for f in frames],
            "error": [f.error for f in frames],
            "shard_id": [shard_id] * len(frames),
        },
        schema=FRAMES_SCHEMA,
    )
    boxes = [(f, box) for f in frames for box in f.boxes]
    detections = pa.table(
        {
            "run_id": [run_id] * len(boxes),
            "source_uri": [f.uri for f, _ in boxes],
            "frame_index": [f.index for f, _ in boxes],
            "timestamp_s": [None] * len(boxes),
            "class_id": [names.index(box[0]) for _, box in boxes],
            "class_name": [box[0] for _, box in boxes],
            **{column: [box[i + 1] for _, box in boxes] for i, column in enumerate(("score", "x1", "y1", "x2", "y2"))},
        },
        schema=DETECTIONS_SCHEMA,
    )
    for table, name in ((frames_table, "frames"), (detections, "detections")):
        path = out / name / PARTITION / f"part-{run_id}-{shard_id}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
