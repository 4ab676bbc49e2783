"""Per-shard commit protocol: rows staged, then published as the shard's table files, then the commit marker;
a shard whose marker counts is done.

The write stage stages a shard's rows, block by block, under ``_runs/<run_id>/staging/<shard>/`` (outside the
tables' folders: readers never see them). Once every block of a shard is staged, ``publish`` (a task, not the
driver) reads them back, keeps each frame once, checks that every work item gave all of its rows, and splits
them by partition into ``frames/<partition>/part-<run_id>-<shard>-e<epoch>.parquet`` and the same under
``detections/``. So a table file only ever holds a whole shard, each frame once, and its name is fixed by run,
shard and the epoch of the output's lease (the ``Fence``'s): a shard published again under the same epoch (a
retried task) overwrites its own files, and a writer of an earlier epoch that stalled past a takeover never
overwrites the new holder's. The marker ``_runs/<run_id>/shards/<shard>-e<epoch>.json`` is written last and
carries the shard's counts; once it counts (``common.epochs``) the shard is done, which is what ``export``,
``report`` and resume go by.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.storage import Location, read_files
from jobs.failures import Retryable
from jobs.records.fence import Fence, deadline_of
from jobs.records.shard_markers import ShardMarkers
from schemas import layout
from schemas.manifest import ShardCommit
from schemas.tables import (
    DETECTIONS_SCHEMA,
    FRAMES_SCHEMA,
    STATUS_ERROR,
    STATUS_NONE,
    STATUS_OK,
    error_kind,
    row_keys,
)


class IncompleteShardError(Retryable):
    """The staged rows of a shard the driver took for complete are not: the shard is not published, and the
    pipeline's retry does it again."""


class ShardCommitter:
    """Writes finished shards of one run under ``out`` (``markers`` tells which are already committed)."""

    def __init__(self, out: Location, run_id: str, class_names: tuple[str, ...], fence: Fence | None = None) -> None:
        """``fence``: the run's hold on the output's lease, checked before each marker is written, so a run that
        lost the output to another (``jobs.records.lease``) commits nothing more; its epoch is in every name this
        writes, and its deadline bounds each of its writes. Without one (outputs the tests and benchmarks make
        without a run) names carry no epoch, as those of outputs from before epochs."""
        self.out = out
        self.run_id = run_id
        self.fence = fence
        self.epoch = fence.epoch if fence is not None else 0
        self.deadline = deadline_of(fence)
        self.markers = ShardMarkers(out, run_id)
        self._class_names = pa.array(class_names, pa.string())

    def staging(self, shard_id: str | None = None) -> Location:
        """Where the write stage stages rows of ``shard_id`` (of every shard, when None)."""
        return self.out.child(layout.staging(self.run_id, shard_id))

    def staged(self, shard_id: str, name: str) -> Location:
        return self.staging(shard_id).child(name)

    def reconcile(self, partitions: Collection[str]) -> tuple[dict[str, ShardCommit], int]:
        """The run's commits that count, once what no counting marker names is removed (``ShardMarkers.reconcile``:
        a killed attempt's part files, a stale writer's, partial files) with the staged rows; and how many files
        went. ``partitions``: the run's."""
        commits, removed = self.markers.reconcile(self.epoch, partitions)
        return commits, removed + self.remove_staging()

    def remove_staging(self) -> int:
        """Delete what is left of the run's staged rows (files no publishing used: rows a failed pipeline staged,
        or a redone task staged twice), at an attempt's start and end, when none can be needed. Returns how many
        files went."""
        folder = self.staging()
        files = folder.files()
        if folder.fs.exists(folder.path):
            folder.fs.rm(folder.path, recursive=True)
        return len(files)

    def publish(self, shard_id: str, files: list[str], items: int) -> ShardCommit:
        """Commit a shard from its staged ``files`` (each frame once, whichever files repeat it), after checking
        that each of its ``items`` work items gave every row; then remove those files.

        Idempotent: when the staged files are gone because an earlier try already committed the shard (Ray
        redoes a task whose worker died), that commit is returned."""
        paths = [self.staged(shard_id, name).path for name in files]
        try:
            contents = read_files(self.out.fs, paths)
        except FileNotFoundError:
            marker = self.markers.marker(shard_id, self.epoch)
            if not marker.fs.exists(marker.path):
                raise
            return ShardCommit.model_validate_json(marker.read_bytes())
        staged = pa.concat_tables(pa.ipc.open_stream(contents[p]).read_all() for p in paths)
        results = staged.take(np.unique(row_keys(staged), return_index=True)[1])
        _check_whole(shard_id, results, items)
        commit = self.commit(shard_id, results, items)
        self.out.fs.rm(paths)
        return commit

    def commit(self, shard_id: str, results: pa.Table, items: int) -> ShardCommit:
        """Publish a complete shard's rows (placeholders of items that gave no frame dropped), then its marker."""
        results = results.filter(pc.not_equal(results.column("status"), STATUS_NONE))
        frames, detections = self._tables(results)
        files = []
        for partition in sorted(set(results.column("partition").to_pylist())):
            for table_name, table in zip(layout.TABLES, (frames, detections)):
                part = table.filter(pc.equal(table.column("partition"), partition)).drop_columns(["partition"])
                relative = layout.part_file(table_name, partition, self.run_id, shard_id, self.epoch)
                self.out.child(relative).write_bytes_atomic(parquet_bytes(part), deadline=self.deadline)
                files.append(relative)
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
            epoch=self.epoch,
        )
        if self.fence is not None:
            self.fence.check()
        marker = self.markers.marker(shard_id, self.epoch)
        marker.write_bytes_atomic(commit.model_dump_json(indent=1).encode(), deadline=self.deadline)
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


def _check_whole(shard_id: str, results: pa.Table, items: int) -> None:
    """Raise ``IncompleteShardError`` unless ``items`` work items each gave as many rows as their last row says."""
    counts = results.group_by("item").aggregate([("item", "count"), ("item_rows", "max")])
    short = pc.sum(pc.not_equal(counts.column("item_count"), counts.column("item_rows_max").cast(pa.int64())))
    if counts.num_rows != items or short.as_py():
        raise IncompleteShardError(
            f"shard {shard_id}: staged rows cover {counts.num_rows} of {items} work items, "
            f"{short.as_py() or 0} of them short of rows"
        )


def staged_bytes(rows: pa.Table) -> bytes:
    """Rows as staged: an Arrow IPC stream, uncompressed. Staged files live for seconds and are read once, so
    encoding them as cheaply as possible beats making them small."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, rows.schema) as writer:
        writer.write_table(rows)
    return sink.getvalue().to_pybytes()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
