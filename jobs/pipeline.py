"""The Ray Data pipeline: planned inputs → decode/letterbox tasks (CPU) → detection actors → driver commits.

The driver consumes the model stage's output as a stream and commits each shard as soon as all of its rows
have arrived, so memory on the driver holds only shards in flight, and a crash loses at most those.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import ray

from jobs.commit import ShardCommitter
from jobs.stages import DetectStage, decode_batch
from schemas.manifest import ShardCommit
from schemas.tables import STATUS_ERROR, STATUS_NONE
from workers.video import Sampling
from jobs.model_setup import ModelSetup


@dataclass(frozen=True)
class Resources:
    """How the pipeline is laid out on the cluster."""

    device: str
    workers: int
    batch_size: int
    torch_threads: int
    decode_batch_size: int = 8
    block_rows: int = 32


def build_dataset(
    pending: pa.Table,
    setup: ModelSetup,
    model_name: str,
    resources: Resources,
    sampling: Sampling,
    storage_options: dict[str, Any],
) -> ray.data.Dataset:
    """The lazy dataset of result rows (``schemas.tables.RESULTS_SCHEMA``) for the pending work items.

    Decode tasks take one work item at a time (a video range may give thousands of frames, yielded in batches
    of ``decode_batch_size``), so items spread evenly over the cluster."""
    blocks = [pending.slice(i, resources.block_rows) for i in range(0, pending.num_rows, resources.block_rows)]
    weights_ref = ray.put(setup.weights)
    return (
        ray.data.from_arrow(blocks)
        .map_batches(
            decode_batch,
            batch_size=1,
            batch_format="numpy",
            fn_kwargs={
                "spec": setup.spec,
                "sampling": sampling,
                "storage_options": storage_options,
                "rows_per_batch": resources.decode_batch_size,
            },
            num_cpus=1,
        )
        .map_batches(
            DetectStage,
            batch_size=resources.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=resources.workers),
            fn_constructor_kwargs={
                "model_name": model_name,
                "weights": weights_ref,
                "spec": setup.spec,
                "device": resources.device,
                "thresholds": setup.thresholds,
                "threads": resources.torch_threads,
            },
            num_gpus=1 if resources.device == "cuda" else 0,
            num_cpus=1,
        )
    )


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
        self.commits: list[ShardCommit] = []

    def add(self, results: pa.Table) -> None:
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

    def _complete(self, shard_id: str) -> bool:
        expected = self._expected[shard_id]
        received = self._received[shard_id]
        return len(expected) == self.items[shard_id] and all(received[i] == n for i, n in expected.items())

    def _commit(self, shard_id: str) -> None:
        rows = pa.concat_tables(self._buffers.pop(shard_id))
        del self._received[shard_id], self._expected[shard_id]
        self.commits.append(self.committer.commit(shard_id, rows, items=self.items[shard_id]))

    @property
    def incomplete(self) -> list[str]:
        return sorted(self._buffers)


def run_pipeline(dataset: ray.data.Dataset, collector: ShardCollector) -> None:
    """Stream results to the collector until the dataset is exhausted."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        collector.add(batch)
