"""One run of the detection job, from config to committed output, manifest and exit code.

Order of work: check the output and the weights (usage errors surface in seconds), list and plan (or reload
the plan of the run being resumed), skip committed shards, stream the rest through Ray Data, then write the
manifest and print the summary. The steps themselves live in their own modules; this one only orders them.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO, TypeVar

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from common.errors import EXIT_ERROR_RATE, EXIT_FAILED, EXIT_OK, UsageError
from common.progress import Progress
from common.storage import Location, location
from jobs.commit.collector import ShardCollector
from jobs.commit.committer import ShardCommitter
from jobs.commit.publish import Publisher
from jobs.console import announce, summary
from jobs.pipeline.dataset import build_dataset, run_pipeline
from jobs.pipeline.decode_stage import Decoding
from jobs.pipeline.execution import MAX_SHARD_ATTEMPTS, execute
from jobs.pipeline.failures import describe_failure
from jobs.pipeline.model_setup import ModelSetup, prepare_model
from jobs.pipeline.ray_session import start_ray
from jobs.pipeline.resources import Resources, cpu_model, fit_to_cluster, plan_resources
from jobs.planning.incremental import record_run
from jobs.planning.listing import list_sources
from jobs.planning.plan import Plan
from jobs.planning.resume import resume_or_plan
from jobs.records.run_manifest import finished, now_iso
from jobs.records.run_store import RunStore
from schemas import layout
from schemas.config import JobConfig
from schemas.manifest import Attempt, Layout, RunManifest
from workers.video import Sampling

T = TypeVar("T")


@dataclass(frozen=True)
class RunResult:
    manifest: RunManifest
    exit_code: int


def run_job(config: JobConfig, stream: TextIO | None = None) -> RunResult:
    """Run (or resume) the job ``config`` describes; raises ``UsageError`` before any work if it cannot."""
    stream = stream or sys.stdout
    started = time.monotonic()
    run = _open_run(config, stream)
    progress = Progress(
        total=run.plan.expected_frames, stream=stream, done=run.plan.expected_frames - _expected_frames(run.pending)
    )
    processed = _Processed()
    error: str | None = None
    try:
        if run.pending.num_rows:
            _process(run, progress, processed)
            if processed.failed:
                first = min(processed.failed)
                error = (
                    f"{len(processed.failed)} shard(s) failed after {MAX_SHARD_ATTEMPTS} attempts; "
                    f"{first}: {processed.failed[first]}"
                )
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # the run failed as a whole; committed shards stay and a rerun resumes
        error = describe_failure(exc)
    finally:
        progress.close()
    return _close_run(run, progress, processed, error, started, stream)


@dataclass
class _Run:
    """One attempt at a run: where it writes, its plan, and what is left of it to do."""

    config: JobConfig
    out: Location
    setup: ModelSetup
    store: RunStore
    sampling: Sampling
    manifest: RunManifest
    plan: Plan
    committer: ShardCommitter
    pending: pa.Table
    """Work items of shards not committed yet."""
    attempt: Attempt
    """This attempt as it started (``manifest.attempts[-1]``); completed once, when it ends."""


@dataclass
class _Processed:
    """What processing learnt before it ended, however it ended."""

    layout: Layout | None = None
    pipeline_runs: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _open_run(config: JobConfig, stream: TextIO) -> _Run:
    """Check the output and the model, list, plan or reload the plan, and record the attempt as running.

    Everything that can be wrong with the command fails here, in seconds, before Ray starts."""
    out = _writable_output(config)
    setup = prepare_model(config)
    listing = list_sources(config.sources, config.storage_options)
    store = RunStore(out)
    if config.overwrite:
        store.clear()
    sampling = Sampling(stride=config.video_stride, fps=config.video_fps, max_frames=config.max_frames)
    chosen = resume_or_plan(config, setup, listing, store, sampling, stream)
    committer = ShardCommitter(out, chosen.manifest.run_id, setup.class_names)
    committed = committer.committed_ids()
    cleaned = committer.clean_uncommitted(committed) if chosen.resumed else 0
    pending = chosen.plan.pending(committed)
    attempt = Attempt(
        started_at=now_iso(),
        pending_items=pending.num_rows,
        committed_shards_before=len(committed),
        leftovers_removed=cleaned,
    )
    manifest = chosen.manifest.model_copy(
        update={"status": "running", "attempts": [*chosen.manifest.attempts, attempt]}
    )
    store.save(manifest)
    if setup.weights.license:
        print(f"weights: {setup.weights.license}", file=stream)
    announce(stream, manifest, chosen.plan, pending.num_rows, listing.skipped)
    return _Run(config, out, setup, store, sampling, manifest, chosen.plan, committer, pending, attempt)


def _process(run: _Run, progress: Progress, processed: _Processed) -> None:
    """Stream the pending shards through Ray Data, committing each as it completes; fills ``processed``."""
    config, setup = run.config, run.setup
    resources, traced = _start_cluster(run)
    decoding = Decoding(
        spec=setup.spec,
        sampling=run.sampling,
        storage_options=config.storage_options,
        rows_per_batch=resources.decode_batch_size,
        max_pixels=config.max_image_pixels,
    )

    def process_shards(shards: list[str]) -> str | None:
        items = run.pending.filter(pc.is_in(run.pending.column("shard_id"), pa.array(shards, pa.string())))
        collector = ShardCollector(Publisher(run.committer), run.plan.shard_sizes, progress.advance)
        fitted = fit_to_cluster(resources)  # a node lost since the last pipeline run took its CPUs with it
        processed.layout = fitted.layout()
        try:
            dataset = build_dataset(items, setup, config.model, fitted, decoding, run.committer, traced)
            run_pipeline(dataset, collector)
        except Exception as exc:  # an infrastructure failure: execute() retries or isolates the shards
            return describe_failure(exc)
        finally:
            progress.advance(*(-n for n in collector.uncommitted_counts()))
        if collector.failures:
            first = min(collector.failures)
            return collector.failures[first]
        return None

    shards = sorted(set(run.pending.column("shard_id").to_pylist()))
    try:
        outcome = execute(shards, process_shards, run.committer.committed_ids)
    finally:
        run.committer.remove_staging()
    processed.pipeline_runs = outcome.runs
    processed.failed = outcome.failed


def _start_cluster(run: _Run) -> tuple[Resources, bytes | None]:
    """Join or start Ray and size the pipeline to it; with the model for CPU actors when they get one.

    On CPU the model actors load the fused model exported (ONNX) or traced (TorchScript) here, skipping
    super-gradients' import, most of an actor's start-up; that runs (or comes from the cache) while Ray starts.
    On GPU actors build the model themselves, on their device."""
    config = run.config
    tracing = _in_background(cpu_model, config, run.setup) if config.device != "cuda" else None
    start_ray(config.ray_address)
    resources = plan_resources(config)
    traced = tracing.result() if tracing is not None and resources.device == "cpu" else None
    return resources, traced


def _close_run(
    run: _Run, progress: Progress, processed: _Processed, error: str | None, started: float, stream: TextIO
) -> RunResult:
    """Record how the attempt ended in the manifest, print the summary, and give the exit code."""
    first_result = progress.first_result_at
    attempt = run.attempt.model_copy(
        update={
            "layout": processed.layout,
            "pipeline_runs": processed.pipeline_runs,
            "startup_s": None if first_result is None else round(first_result - started, 3),
            "process_startup_s": None if first_result is None else round(_since_process_start(first_result), 3),
            "finished_at": now_iso(),
            "wall_s": round(time.monotonic() - started, 3),
            "frames_per_s": round(progress.rate, 3),
            "error": error,
        }
    )
    manifest = finished(run.manifest, run.committer.committed(), run.plan, processed.failed, attempt)
    run.store.save(manifest)
    record_run(run.store, manifest, run.plan, stream)
    exit_code = _exit_code(manifest, run.config.max_error_rate)
    summary(stream, manifest, run.out, exit_code)
    return RunResult(manifest=manifest, exit_code=exit_code)


def _in_background(fn: Callable[..., T], *args: Any) -> Future[T]:
    """``fn(*args)`` in a daemon thread: a result that turns out not to be needed (the cluster has GPUs) does
    not hold the process open at exit, as a ``ThreadPoolExecutor`` thread would."""
    future: Future[T] = Future()

    def work() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to whoever calls result()
            future.set_exception(exc)

    threading.Thread(target=work, name=fn.__name__, daemon=True).start()
    return future


def _writable_output(config: JobConfig) -> Location:
    """The output location, proven writable by writing and removing a probe file."""
    out = location(config.output, config.storage_options)
    probe = out.child(layout.write_probe(RunStore.new_run_id()))
    try:
        probe.write_bytes_atomic(b"")
        probe.fs.rm(probe.path)
    except (OSError, PermissionError) as exc:
        raise UsageError(f"cannot write to output {config.output}: {exc.strerror or exc}") from None
    return out


def _exit_code(manifest: RunManifest, max_error_rate: float) -> int:
    if manifest.status != "completed":
        return EXIT_FAILED
    if manifest.counts.frames and manifest.counts.error / manifest.counts.frames > max_error_rate:
        return EXIT_ERROR_RATE
    return EXIT_OK


def _since_process_start(moment: float) -> float:
    """Seconds from this process's start to ``moment`` (``time.monotonic()``): start-up as the person who typed
    the command waits for it, imports included, where ``startup_s`` counts from the job's start."""
    return time.time() - (time.monotonic() - moment) - psutil.Process().create_time()


def _expected_frames(items: pa.Table) -> int:
    return pc.sum(items.column("expected_frames")).as_py() or 0
