"""Per-shard commit protocol: outputs first, then the commit marker; a shard with a marker is done.

A shard's rows are split by partition into ``frames/<partition>/part-<run_id>-<shard>.parquet`` and the same
under ``detections/``. Each file is published atomically (``Location.write_bytes_atomic``). File names are
deterministic, so a shard redone after a crash overwrites its own partial files instead of duplicating rows.
The marker ``_runs/<run_id>/shards/<shard>.json`` is written last and carries the shard's counts.
"""

from __future__ import annotations

import io
import posixpath
from collections import Counter
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.storage import Location
from schemas.manifest import ShardCommit
from schemas.tables import DETECTIONS_SCHEMA, FRAMES_SCHEMA, STATUS_ERROR, STATUS_NONE, STATUS_OK


def error_kind(message: str | None) -> str:
    """The stage of an error message (``decode: …`` → ``decode``), for counting by kind."""
    return (message or "unknown").split(":", 1)[0].strip() or "unknown"


class ShardCommitter:
    """Writes finished shards of one run under ``out`` and tells which shards are already committed."""

    def __init__(self, out: Location, run_id: str, class_names: tuple[str, ...]) -> None:
        self.out = out
        self.run_id = run_id
        self._class_names = pa.array(class_names, pa.string())

    def marker(self, shard_id: str) -> Location:
        return self.out.child("_runs", self.run_id, "shards", f"{shard_id}.json")

    def committed(self) -> dict[str, ShardCommit]:
        """Markers already present for this run (read once at start: what a resumed run skips)."""
        folder = self.out.child("_runs", self.run_id, "shards")
        if not folder.fs.exists(folder.path):
            return {}
        found = {}
        for path in folder.fs.glob(folder.path.rstrip("/") + "/*.json"):
            commit = ShardCommit.model_validate_json(Location(folder.fs, path).read_bytes())
            found[commit.shard_id] = commit
        return found

    def committed_ids(self) -> set[str]:
        """Shard ids with a marker, from the folder listing alone (markers are not read)."""
        folder = self.out.child("_runs", self.run_id, "shards")
        folder.fs.invalidate_cache(folder.path)
        if not folder.fs.exists(folder.path):
            return set()
        return {posixpath.basename(p)[: -len(".json")] for p in folder.fs.glob(folder.path.rstrip("/") + "/*.json")}

    def clean_uncommitted(self, committed: set[str]) -> int:
        """Delete what a killed attempt of this run left: part files of shards without a marker (readers would
        otherwise see rows the rerun writes again) and partial ``.tmp`` files. Returns how many were removed."""
        fs = self.out.fs
        leftovers = []
        for table in ("frames", "detections"):
            root = self.out.child(table)
            fs.invalidate_cache(root.path)
            if not fs.exists(root.path):
                continue
            for path in fs.find(root.path):
                name = posixpath.basename(path)
                shard = (
                    name[len(f"part-{self.run_id}-") : -len(".parquet")]
                    if name.startswith(f"part-{self.run_id}-")
                    else None
                )
                if name.endswith(".tmp") or (
                    shard is not None and name.endswith(".parquet") and shard not in committed
                ):
                    leftovers.append(path)
        markers = self.out.child("_runs", self.run_id, "shards")
        if fs.exists(markers.path):
            leftovers += [p for p in fs.find(markers.path) if p.endswith(".tmp")]
        for path in leftovers:
            fs.rm_file(path)
        return len(leftovers)

    def commit(self, shard_id: str, results: pa.Table, items: int) -> ShardCommit:
        """Publish a complete shard's rows (placeholders of items that gave no frame dropped), then its marker."""
        results = results.filter(pc.not_equal(results.column("status"), STATUS_NONE))
        frames, detections = self._tables(results)
        files = []
        for partition in sorted(set(results.column("partition").to_pylist())):
            for table_name, table in (("frames", frames), ("detections", detections)):
                part = table.filter(pc.equal(table.column("partition"), partition)).drop_columns(["partition"])
                target = self.out.child(table_name, partition, f"part-{self.run_id}-{shard_id}.parquet")
                target.write_bytes_atomic(_parquet_bytes(part))
                files.append(f"{table_name}/{partition}/{target.path.rsplit('/', 1)[-1]}")
        status = frames.column("status")
        error_kinds = Counter(error_kind(e) for e in frames.column("error").to_pylist() if e is not None)
        commit = ShardCommit(
            run_id=self.run_id,
            shard_id=shard_id,
            items=items,
            frames=frames.num_rows,
            ok=pc.sum(pc.equal(status, STATUS_OK)).as_py() or 0,
            errors=pc.sum(pc.equal(status, STATUS_ERROR)).as_py() or 0,
            detections=detections.num_rows,
            files=files,
            committed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            error_kinds=dict(error_kinds),
        )
        self.marker(shard_id).write_bytes_atomic(commit.model_dump_json(indent=1).encode())
        return commit

    def _tables(self, results: pa.Table) -> tuple[pa.Table, pa.Table]:
        """Split the model stage's rows (boxes nested per frame) into the two output tables."""
        results = results.sort_by([("source_uri", "ascending"), ("frame_index", "ascending")])
        n = results.num_rows
        run_ids = pa.array([self.run_id] * n, pa.string())
        boxes = results.column("boxes").combine_chunks()
        frames = pa.table(
            {
                "run_id": run_ids,
                **{name: results.column(name) for name in ("source_uri", "frame_index", "timestamp_s")},
                "width": results.column("width"),
                "height": results.column("height"),
                "num_detections": pc.list_value_length(boxes).cast(pa.int32()),
                **{name: results.column(name) for name in ("status", "error", "shard_id", "partition")},
            }
        )
        parents = pc.list_parent_indices(boxes)
        flat = pc.list_flatten(boxes)
        keys = results.select(["source_uri", "frame_index", "timestamp_s", "partition"]).take(parents)
        class_ids = flat.field("class_id")
        detections = pa.table(
            {
                "run_id": pa.array([self.run_id] * len(flat), pa.string()),
                **{name: keys.column(name) for name in ("source_uri", "frame_index", "timestamp_s")},
                "class_id": class_ids,
                "class_name": self._class_names.take(class_ids),
                **{name: flat.field(name) for name in ("score", "x1", "y1", "x2", "y2")},
                "partition": keys.column("partition"),
            }
        )
        return (
            frames.cast(_with_partition(FRAMES_SCHEMA)),
            detections.cast(_with_partition(DETECTIONS_SCHEMA)),
        )


def _with_partition(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field("partition", pa.string(), nullable=False))


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
