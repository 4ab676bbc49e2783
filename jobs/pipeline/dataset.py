"""The Ray Data pipeline: planned inputs → decode/letterbox tasks (CPU) → detection actors → write tasks
(staged rows) → receipts to the driver, which has each shard published as soon as all of its rows are staged.

No result row passes through the driver, so output throughput grows with the write tasks and the cluster;
the driver holds only the receipts of shards in flight, and a crash loses at most those shards' work.
Ray Data's own datasinks are not used: they commit once, when the whole dataset is written, where this job
commits each shard as it completes, which is what resume and progress rest on.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings

import pyarrow as pa
import ray
from ray.data import DataContext

from jobs.commit.collector import ShardCollector
from jobs.commit.committer import ShardCommitter
from jobs.pipeline.decode_stage import DECODE_TASK_CPUS, Decoding, decode_batch
from jobs.pipeline.detect_stage import DetectStage
from jobs.pipeline.resources import Resources
from jobs.pipeline.write_stage import write_results
from jobs.planning.model_setup import ModelSetup
from jobs.stopping import NEVER, Stopped, StopSignals

READY_BATCHES_PER_ACTOR = 4
"""Decoded batches that may wait in the object store per model actor. Enough that an actor never waits for
decoding; more only costs memory, since decode tasks would otherwise run as far ahead as Ray Data's default
budget (a share of the whole object store) lets them, and object-store use would grow with the input."""
MIN_OBJECT_STORE_BUDGET = 64 * 1024 * 1024


def build_dataset(
    pending: pa.Table,
    setup: ModelSetup,
    model_name: str,
    resources: Resources,
    decoding: Decoding,
    committer: ShardCommitter,
    traced: bytes | None = None,
    in_flight: ray.actor.ActorHandle | None = None,
) -> ray.data.Dataset:
    """The lazy dataset of receipts (``schemas.tables.RECEIPT_SCHEMA``) for the pending work items.

    ``traced``: the fused model as TorchScript (or ONNX, for ``resources.runtime`` onnxruntime), which actors
    load instead of building it from the weights. ``in_flight``: the registry the model actors tell what they run
    (``jobs.pipeline.in_flight``).
    Ray redoes the tasks of dead actors and nodes without limit (Ray Data's defaults): the stall watchdog, not a
    retry count, bounds a run that stops making progress.
    A decode task takes one block of the plan whole (``work_blocks``); it yields its frames in batches of
    ``decode_batch_size``. On CPUs Ray Data fuses the decode stage into the model actors (same resources, a task
    pool into an actor pool), so there each actor decodes its own blocks between forward passes."""
    blocks = work_blocks(pending, min(resources.block_rows, resources.batch_size))
    _limit_object_store(resources, setup.spec.canvas)
    model_ref = ray.put(traced if traced is not None else setup.weights)
    results = (
        # from_blocks, not from_arrow: it reads each block's metadata here, where from_arrow sends a task per
        # block to a worker and waits (seconds on a cold cluster, before any decoding can start).
        ray.data.from_blocks(blocks)
        .map_batches(
            decode_batch,
            batch_size=None,
            batch_format="numpy",
            fn_kwargs={"decoding": decoding},
            compute=ray.data.TaskPoolStrategy(size=resources.decode_workers),
            num_cpus=DECODE_TASK_CPUS,
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
                "in_flight": in_flight,
            },
            num_gpus=1 / resources.actors_per_gpu if resources.device == "cuda" else 0,
            num_cpus=1,
        )
    )
    return with_writes(results, committer, resources.write_workers)


def work_blocks(pending: pa.Table, photos: int) -> list[pa.Table]:
    """The plan cut into the blocks decode tasks take, one block a task, in plan order: up to ``photos``
    consecutive photos together, decoded in one call, so that a task's frames leave it in full batches (an
    output block per photo costs a quarter of the decode stage's rate on small photos:
    ``benchmarks/decode_stage.py``), and each video range alone, so that ranges, thousands of frames each, spread
    over the decode slots of the cluster."""
    blocks: list[pa.Table] = []
    kinds = pending.column("kind").to_pylist()
    start = 0
    for is_photo, run in itertools.groupby(kinds, key=lambda kind: kind == "image"):
        length = len(list(run))
        step = photos if is_photo else 1
        blocks += [pending.slice(i, min(step, start + length - i)) for i in range(start, start + length, step)]
        start += length
    return blocks


def with_writes(results: ray.data.Dataset, committer: ShardCommitter, workers: int) -> ray.data.Dataset:
    """``results`` (``RESULTS_SCHEMA`` rows) staged by ``workers`` write tasks at once, as receipts.

    One result block per task (no ``batch_size``), so a redone block is restaged whole under its own name.
    Write tasks reserve no CPU: they mostly wait on storage, and the model and decode stages hold the CPUs;
    Ray Data spreads them over the cluster."""
    # Ray Data warns, on the user's console, whenever a run has fewer result blocks than write tasks allowed
    # (every small run): a limit not reached is no problem.
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks", category=UserWarning)
    return results.map_batches(
        functools.partial(write_results, committer=committer),
        batch_size=None,
        batch_format="pyarrow",
        compute=ray.data.TaskPoolStrategy(size=workers),
        num_cpus=0,
    )


def _limit_object_store(resources: Resources, canvas: tuple[int, int]) -> None:
    """Cap the pipeline's object-store budget at ``READY_BATCHES_PER_ACTOR`` decoded batches per model actor, so
    memory stays flat however large the input (``benchmarks/memory_scale.py`` measures it)."""
    batch_bytes = resources.batch_size * canvas[0] * canvas[1] * 3
    budget = max(MIN_OBJECT_STORE_BUDGET, READY_BATCHES_PER_ACTOR * resources.workers * batch_bytes)
    options = DataContext.get_current().execution_options
    options.resource_limits = options.resource_limits.copy(object_store_memory=budget)


def limit_stalls(timeout_s: float) -> None:
    """Fail a pipeline run that makes no progress for ``timeout_s``: no block taken or moved by any stage (a frozen
    actor, a task that never returns), or model actors that cannot start (a cluster without room for them)."""
    context = DataContext.get_current()
    context.execution_no_progress_timeout_s = timeout_s
    context.wait_for_min_actors_s = math.ceil(timeout_s)


def run_pipeline(dataset: ray.data.Dataset, collector: ShardCollector, stop: StopSignals = NEVER) -> None:
    """Stream receipts to the collector until the dataset is exhausted, each block as soon as it is done, then
    wait for the shards being published (also when the pipeline fails: what it completed still commits).

    A stop signal (``jobs.stopping``) ends the wait for the next block, which shuts Ray Data's executor down, so
    nothing more is submitted; the shards being published get ``stop.grace_s``, and ``Stopped`` goes on up.

    No prefetching: with Ray Data's default (one batch ahead) the iterator hands a block over only once the next
    one has arrived, so every receipt, the first one and each shard's commit included, reached the driver a
    model batch late. Receipts are small, so fetching each one when it is needed costs the driver little."""
    batches = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=0))
    try:
        while True:
            with stop.raising():
                batch = next(batches, None)
            if batch is None:
                break
            collector.add(batch)
    finally:
        batches.close()  # type: ignore[attr-defined]  # a generator: closing it shuts the executor down now
        _finish(collector, stop)


def _finish(collector: ShardCollector, stop: StopSignals) -> None:
    """Wait for the shards being published; once the run is stopped, for the grace only."""
    if stop.received is None:
        try:
            with stop.raising():
                collector.finish()
            return
        except Stopped:
            collector.finish(within=stop.grace_s)
            raise
    collector.finish(within=stop.grace_s)
