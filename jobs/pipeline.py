"""The Ray Data pipeline: planned inputs → decode/letterbox tasks (CPU) → detection actors → driver commits.

The driver consumes the model stage's output as a stream and commits each shard as soon as all of its rows
have arrived, so memory on the driver holds only shards in flight, and a crash loses at most those.
"""

from __future__ import annotations

from collections import Counter, defaultdict
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data import DataContext
from ray.util.annotations import RayDeprecationWarning

from jobs.commit import ShardCommitter
from jobs.decode_stage import Decoding, decode_batch
from jobs.detect_stage import DetectStage
from schemas.manifest import ShardCommit
from schemas.tables import STATUS_ERROR, STATUS_NONE
from jobs.model_setup import ModelSetup
from workers.detector import Runtime


READY_BATCHES_PER_ACTOR = 4
"""Decoded batches that may wait in the object store per model actor. Enough that an actor never waits for
decoding; more only costs memory, since decode tasks would otherwise run as far ahead as Ray Data's default
budget (a share of the whole object store) lets them, and object-store use would grow with the input."""
MIN_OBJECT_STORE_BUDGET = 64 * 1024 * 1024

MODEL_TASK_RETRIES = 3
"""Times Ray redoes a model batch whose actor died (the actor itself is always restarted). Ray Data's default
is unbounded, which turns an input that kills every actor it meets into a job that never ends; bounded, the
run fails and ``jobs.execution`` isolates the shard."""


@dataclass(frozen=True)
class Resources:
    """How the pipeline is laid out on the cluster."""

    device: str
    workers: int
    batch_size: int
    torch_threads: int
    actors_per_gpu: int
    decode_workers: int | None
    """Decode tasks at once at most; None: as many as free CPUs allow."""
    runtime: Runtime = "torch"
    decode_batch_size: int = 8
    block_rows: int = 32


def build_dataset(
    pending: pa.Table,
    setup: ModelSetup,
    model_name: str,
    resources: Resources,
    decoding: Decoding,
    traced: bytes | None = None,
) -> ray.data.Dataset:
    """The lazy dataset of result rows (``schemas.tables.RESULTS_SCHEMA``) for the pending work items.

    ``traced``: the fused model as TorchScript (or ONNX, for ``resources.runtime`` onnxruntime), which actors
    load instead of building it from the weights.
    Decode tasks take one work item at a time (a video range may give thousands of frames, yielded in batches
    of ``decode_batch_size``), so items spread evenly over the cluster."""
    rows = min(resources.block_rows, resources.batch_size)
    blocks = [pending.slice(i, rows) for i in range(0, pending.num_rows, rows)]
    _limit_object_store(resources, setup.spec.canvas)
    model_ref = ray.put(traced if traced is not None else setup.weights)
    return (
        # from_blocks, not from_arrow: it reads each block's metadata here, where from_arrow sends a task per
        # block to a worker and waits (seconds on a cold cluster, before any decoding can start).
        ray.data.from_blocks(blocks)
        .map_batches(
            decode_batch,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={"decoding": decoding},
            compute=ray.data.TaskPoolStrategy(size=resources.decode_workers),
            num_cpus=1,
        )
        .map_batches(
            DetectStage,
            batch_size=resources.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=resources.workers),
            fn_constructor_kwargs={
                "model_name": model_name,
                "model": model_ref,
                "spec": setup.spec,
                "device": resources.device,
                "batch_size": resources.batch_size,
                "thresholds": setup.thresholds,
                "precision": setup.precision,
                "runtime": resources.runtime,
                "threads": resources.torch_threads,
            },
            num_gpus=1 / resources.actors_per_gpu if resources.device == "cuda" else 0,
            num_cpus=1,
            **_bounded_task_retries(),
        )
    )


def _limit_object_store(resources: Resources, canvas: tuple[int, int]) -> None:
    """Cap the pipeline's object-store budget at ``READY_BATCHES_PER_ACTOR`` decoded batches per model actor, so
    memory stays flat however large the input (``benchmarks/memory_scale.py`` measures it)."""
    batch_bytes = resources.batch_size * canvas[0] * canvas[1] * 3
    budget = max(MIN_OBJECT_STORE_BUDGET, READY_BATCHES_PER_ACTOR * resources.workers * batch_bytes)
    options = DataContext.get_current().execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=budget)


def _bounded_task_retries() -> dict[str, Any]:
    """``MODEL_TASK_RETRIES`` for the actor pool. Ray 2.60 has no named parameter for it and warns that the
    generic remote arguments are deprecated (removal planned for 2.64); the warning is silenced here, where
    the one such use is, until a named parameter exists."""
    warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated", category=RayDeprecationWarning)
    return {"max_restarts": -1, "max_task_retries": MODEL_TASK_RETRIES}


class ShardCollector:
    """Buffers result rows per shard and commits a shard once every one of its work items has delivered all of
    its rows (an item's last row says how many it gave; rows of one item may arrive in any order)."""

    def __init__(self, committer: ShardCommitter, items: dict[str, int], on_rows: Callable[[int, int], None]) -> None:
        self.committer = committer
        self.items = items
        self.on_rows = on_rows
        self._buffers: dict[str, list[pa.Table]] = defaultdict(list)
        self._received: dict[str, Counter] = defaultdict(Counter)
        self._expected: dict[str, dict[int, int]] = defaultdict(dict)
        self._seen: dict[str, set[tuple[int, int]]] = defaultdict(set)
        self._done: set[str] = set()
        self.commits: list[ShardCommit] = []

    def add(self, results: pa.Table) -> None:
        results = self._unseen(results)
        frames = pc.sum(pc.not_equal(results.column("status"), STATUS_NONE)).as_py() or 0
        errors = pc.sum(pc.equal(results.column("status"), STATUS_ERROR)).as_py() or 0
        self.on_rows(frames, errors)
        for shard_id in pc.unique(results.column("shard_id")).to_pylist():
            part = results.filter(pc.equal(results.column("shard_id"), shard_id))
            self._buffers[shard_id].append(part)
            self._received[shard_id].update(part.column("item").to_pylist())
            for item, rows in zip(part.column("item").to_pylist(), part.column("item_rows").to_pylist()):
                if rows:
                    self._expected[shard_id][item] = rows
            if self._complete(shard_id):
                self._commit(shard_id)

    def _unseen(self, results: pa.Table) -> pa.Table:
        """Drop rows already received or of committed shards (a retried task that re-delivers), so no frame is
        written twice. Keys are kept per shard in flight only, so memory stays bounded by the shards in flight."""
        mask = []
        columns = ("shard_id", "item", "frame_index")
        for shard_id, item, frame_index in zip(*(results.column(c).to_pylist() for c in columns)):
            if shard_id in self._done:
                mask.append(False)
                continue
            seen = self._seen[shard_id]
            mask.append((item, frame_index) not in seen)
            seen.add((item, frame_index))
        return results if all(mask) else results.filter(pa.array(mask))

    def _complete(self, shard_id: str) -> bool:
        expected = self._expected[shard_id]
        received = self._received[shard_id]
        return len(expected) == self.items[shard_id] and all(received[i] == n for i, n in expected.items())

    def _commit(self, shard_id: str) -> None:
        rows = pa.concat_tables(self._buffers.pop(shard_id))
        del self._received[shard_id], self._expected[shard_id], self._seen[shard_id]
        self._done.add(shard_id)
        self.commits.append(self.committer.commit(shard_id, rows, items=self.items[shard_id]))

    def uncommitted_counts(self) -> tuple[int, int]:
        """(frames, errors) received for shards never committed: progress to take back when they are redone."""
        tables = [t for parts in self._buffers.values() for t in parts]
        if not tables:
            return 0, 0
        status = pa.concat_tables(tables).column("status")
        frames = pc.sum(pc.not_equal(status, STATUS_NONE)).as_py() or 0
        return frames, pc.sum(pc.equal(status, STATUS_ERROR)).as_py() or 0


def run_pipeline(dataset: ray.data.Dataset, collector: ShardCollector) -> None:
    """Stream results to the collector until the dataset is exhausted, each block as soon as it is done.

    No prefetching: with Ray Data's default (one batch ahead) the iterator hands a block over only once the next
    one has arrived, so every result, the first one and each shard's commit included, reached the driver a model
    batch late (2-3 s on a 2-core CPU). Result blocks are small (boxes, no pixels), so fetching each one when it is
    needed costs the driver little; nothing is gained by fetching ahead."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0):
        collector.add(batch)
