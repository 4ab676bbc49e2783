"""One run of the detection job, from config to committed output, manifest and exit code.

Order of work: check the output and the weights (usage errors surface in seconds), list and plan (or reload
the plan of the run being resumed), skip committed shards, stream the rest through Ray Data, then write the
manifest and print the summary. The steps themselves live in their own modules; this one only orders them.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import TextIO

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from common.background import in_background
from common.epochs import EpochRecords
from common.errors import EXIT_ERROR_RATE, EXIT_FAILED, EXIT_OK, UsageError
from common.progress import Progress
from common.storage import Location
from jobs.commit.collector import ShardCollector
from jobs.commit.committer import ShardCommitter
from jobs.commit.iceberg import IcebergPublisher, IcebergTarget, open_target
from jobs.commit.publish import Publisher
from jobs.console import announce, cpu_notes, summary
from jobs.failures import Failure, classify, describe_failure
from jobs.pipeline.dataset import build_dataset, limit_stalls, run_pipeline
from jobs.pipeline.decode_stage import Decoding
from jobs.pipeline.execution import RETRIES, Retries, execute
from jobs.pipeline.in_flight import start_registry
from jobs.pipeline.ray_address import owns_local_ray
from jobs.pipeline.ray_session import start_ray
from jobs.pipeline.resources import Resources, choose_cpu_runtime, cpu_models, fit_to_cluster, plan_resources
from jobs.pipeline.watchdog import Fired, Watchdog
from jobs.planning.incremental import record_run
from jobs.planning.listing import list_sources
from jobs.planning.model_setup import ModelSetup, prepare_model
from jobs.planning.plan import Plan
from jobs.planning.resume import resume_or_plan
from jobs.records.lease import RunLease
from jobs.records.lease_holder import took_over
from jobs.records.run_manifest import finished, now_iso
from jobs.records.run_store import RunStore, writable_output
from jobs.records.shard_markers import record_epoch
from jobs.stopping import Stopped, StopSignals, exit_code
from schemas.config import JobConfig
from schemas.manifest import Attempt, Layout, RunManifest
from workers.video import Sampling

_SCOPES = {"model": "this model", "all": "every model"}


@dataclass(frozen=True)
class RunResult:
    manifest: RunManifest
    exit_code: int


def run_job(config: JobConfig, stream: TextIO | None = None, retries: Retries = RETRIES) -> RunResult:
    """Run (or resume) the job ``config`` describes, holding the output's lease throughout.

    ``retries`` paces the retries of failed pipeline runs: an argument, not an option, since its backoff waits for
    the cluster (a lost node declared dead), not for anything a user decides; a test of a stall passes a short one.
    SIGTERM, SIGINT and SIGHUP stop the run in order (``jobs.stopping``): the attempt is recorded ``interrupted``
    and the result's exit code is the signal's.

    Raises ``UsageError`` if it cannot run as asked (before any work where that can be known without a cluster),
    ``LeaseHeld`` if another run holds the output, ``Stopped`` if a stop signal came before the attempt was
    recorded."""
    with StopSignals("detect", config.stop_grace) as stop:
        return _run_job(config, stream or sys.stdout, retries, stop)


def _run_job(config: JobConfig, stream: TextIO, retries: Retries, stop: StopSignals) -> RunResult:
    started = time.monotonic()
    with stop.raising():
        out = writable_output(config.output, config.storage_options)
        target = open_target(config, out)
    with RunLease(out, RunStore.new_run_id(), config.lease_ttl, local_ray=owns_local_ray(config.ray_address)) as lease:
        run = _open_run(config, out, lease, stream, stop, target)
        progress = Progress(
            total=run.plan.expected_frames,
            stream=stream,
            done=run.plan.expected_frames - _expected_frames(run.pending),
        )
        processed = _Processed()
        error: str | None = None
        usage: UsageError | None = None
        try:
            if run.pending.num_rows:
                _process(run, progress, processed, stream, retries, stop)
                error = _failure_text(processed)
        except Stopped:
            pass  # recorded from ``stop.stopped_by`` below, however the stop reached this far
        except UsageError as exc:  # the cluster cannot run what was asked: exit 2, once the attempt is recorded
            usage, error = exc, f"usage: {exc}"
        except Exception as exc:  # a bug outside the pipeline: committed shards stay and a rerun resumes
            traceback.print_exc()
            error = describe_failure(exc)
        finally:
            progress.close()
            processed.stopped_by = stop.stopped_by
        result = _close_run(run, progress, processed, error, started, stream)
    if usage is not None:
        raise usage
    return result


def _failure_text(processed: _Processed) -> str | None:
    """The run's error in one line, or None if every shard committed."""
    if processed.bug is not None:
        return f"stopped by an error in the job, not retried: {processed.bug}"
    if processed.failed:
        first = min(processed.failed)
        return (
            f"{len(processed.failed)} shard(s) not committed after {processed.pipeline_runs} pipeline run(s); "
            f"{first}: {processed.failed[first]}"
        )
    return None


@dataclass
class _Run:
    """One attempt at a run: where it writes, its plan, and what is left of it to do."""

    config: JobConfig
    out: Location
    lease: RunLease
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
    iceberg: IcebergPublisher
    """Publishes committed shards to the Iceberg tables (``--iceberg``); does nothing without them."""


@dataclass
class _Processed:
    """What processing learnt before it ended, however it ended."""

    layout: Layout | None = None
    pipeline_runs: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    bug: str | None = None
    """The cause of a failure that retrying could not mend (a bug), which stopped the run."""
    stopped_by: str | None = None
    """The signal that stopped the run in order (``jobs.stopping``), if one came."""


def _open_run(
    config: JobConfig, out: Location, lease: RunLease, stream: TextIO, stop: StopSignals, target: IcebergTarget | None
) -> _Run:
    """Check the model, list, plan or reload the plan, and record the attempt as running.

    Everything that can be wrong with the command fails here, in seconds, before Ray starts. A stop signal ends
    the planning (``Stopped``, nothing recorded); once the attempt is being recorded it waits for the next step."""
    if lease.taken_from is not None:
        print(took_over(lease.taken_from), file=stream, flush=True)
    with stop.raising():
        setup = prepare_model(config)
        listing = list_sources(config.sources, config.storage_options)
        store = RunStore(out, lease.write_deadline_s)
        if config.overwrite is not None:
            removed = store.clear(config.overwrite, config.model_fingerprint(setup.weights.sha256))
            kept = "" if config.overwrite == "all" else "; other models' runs kept (--overwrite all removes them too)"
            print(
                f"overwrite: removed {len(removed)} earlier run(s) of {_SCOPES[config.overwrite]} and their rows{kept}",
                file=stream,
            )
        sampling = Sampling(stride=config.video_stride, fps=config.video_fps, max_frames=config.max_frames)
        chosen = resume_or_plan(config, setup, listing, store, sampling, stream)
    records = EpochRecords.listed(out)
    lease.announce(chosen.manifest.run_id, past_epoch=records.latest)
    record_epoch(lease.fence, records)  # before any marker or part file is read, written or deleted
    committer = ShardCommitter(out, chosen.manifest.run_id, setup.class_names, lease.fence)
    committed, cleaned = committer.reconcile(chosen.plan.partitions) if chosen.resumed else ({}, 0)
    pending = chosen.plan.pending(set(committed))
    attempt = Attempt(
        started_at=now_iso(),
        pending_items=pending.num_rows,
        committed_shards_before=len(committed),
        leftovers_removed=cleaned,
        lease_epoch=lease.fence.epoch,
    )
    manifest = chosen.manifest.model_copy(
        update={"status": "running", "attempts": [*chosen.manifest.attempts, attempt]}
    )
    lease.check()
    store.save(manifest)
    if setup.weights.license:
        print(f"weights: {setup.weights.license}", file=stream)
    announce(stream, manifest, chosen.plan, pending.num_rows, listing.skipped)
    iceberg = IcebergPublisher(target, out, manifest.run_id, lease.fence, stream)
    iceberg.publish()  # what an earlier, killed attempt committed but never published
    return _Run(config, out, lease, setup, store, sampling, manifest, chosen.plan, committer, pending, attempt, iceberg)


def _process(
    run: _Run, progress: Progress, processed: _Processed, stream: TextIO, retries: Retries, stop: StopSignals
) -> None:
    """Stream the pending shards through Ray Data, committing each as it completes; fills ``processed``. A stop
    signal ends it (``Stopped``) once the shards being published have had the grace; no pipeline run follows."""
    config, setup = run.config, run.setup
    with stop.raising():
        resources, traced = _start_cluster(run, stream)
    decoding = Decoding(
        spec=setup.spec,
        sampling=run.sampling,
        storage_options=config.storage_options,
        rows_per_batch=resources.decode_batch_size,
        max_pixels=config.max_image_pixels,
        mode=config.decode,
    )
    limit_stalls(config.stall_timeout)

    def committed(shard_id: str) -> None:
        progress.touch()
        run.iceberg.committed()

    def process_shards(shards: list[str]) -> Failure | None:
        items = run.pending.filter(pc.is_in(run.pending.column("shard_id"), pa.array(shards, pa.string())))
        publisher = Publisher(run.committer, config.stall_timeout)
        collector = ShardCollector(publisher, run.plan.shard_sizes, progress.advance, committed)
        fitted = fit_to_cluster(resources)  # a node lost since the last pipeline run took its CPUs with it
        processed.layout = fitted.layout()
        watchdog = Watchdog(progress, config.stall_timeout, collector.waiting, lambda: run.lease.lost)
        try:
            with watchdog:
                dataset = build_dataset(
                    items, setup, config.model, fitted, decoding, run.committer, traced, start_registry()
                )
                run_pipeline(dataset, collector, stop)
        except Fired:
            return Failure(infrastructure=run.lease.lost is None, cause=watchdog.fired or "stopped by the watchdog")
        except Exception as exc:  # classified: execute() retries what infrastructure failed, a bug stops the run
            return classify(exc)
        finally:
            progress.advance(*(-n for n in collector.uncommitted_counts()))
        if collector.failures:
            first = min(collector.failures)
            return collector.failures[first]
        return None

    def retrying(failure: Failure, shards: int, delay: float) -> None:
        print(f"pipeline run failed: {failure.cause}; retrying {shards} shard(s) in {delay:.0f} s", file=stream)

    shards = sorted(set(run.pending.column("shard_id").to_pylist()))
    try:
        outcome = execute(
            shards,
            process_shards,
            run.committer.markers.committed_ids,
            retries,
            on_retry=retrying,
            sleep=stop.sleep,
            stopped=lambda: stop.received is not None,
        )
    finally:
        run.committer.remove_staging()
    processed.pipeline_runs = outcome.runs
    processed.failed = outcome.failed
    if outcome.bug is not None:
        if outcome.bug.detail:
            print(outcome.bug.detail, file=sys.stderr)
        processed.bug = outcome.bug.cause


def _start_cluster(run: _Run, stream: TextIO) -> tuple[Resources, bytes | None]:
    """Join or start Ray and size the pipeline to it; with the model for CPU actors when they get one.

    On CPU the model actors load the fused model exported (ONNX) or traced (TorchScript) here, skipping
    super-gradients' import, most of an actor's start-up; that runs (or comes from the cache) while Ray starts,
    and with ``--runtime auto`` the faster of the two on this CPU is measured (once per kind of CPU). On GPU actors
    build the model themselves, on their device."""
    config = run.config
    tracing = in_background(cpu_models, config, run.setup) if config.device != "cuda" else None
    start_ray(config.ray_address)
    resources = plan_resources(config)
    if tracing is None or resources.device != "cpu":
        return resources, None
    models = tracing.result()
    runtime, measured = choose_cpu_runtime(config, run.setup, models, resources)
    for note in cpu_notes(config, resources, measured):
        print(note, file=stream, flush=True)
    return replace(resources, runtime=runtime), models[runtime]


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
            "stopped_by": processed.stopped_by,
        }
    )
    run.lease.check()  # a run that lost the output to another neither cleans it up nor writes over its manifest
    committed, _ = run.committer.reconcile(run.plan.partitions)
    iceberg = run.iceberg.publish()
    manifest = finished(run.manifest, committed, run.plan.shard_sizes, processed.failed, attempt)
    manifest = manifest.model_copy(update={"iceberg": iceberg})
    run.lease.check()
    run.store.save(manifest)
    record_run(run.store, manifest, run.plan, stream)
    exit_code = _exit_code(manifest, run.config.max_error_rate)
    summary(stream, manifest, run.out, exit_code)
    return RunResult(manifest=manifest, exit_code=exit_code)


def _exit_code(manifest: RunManifest, max_error_rate: float) -> int:
    stopped_by = manifest.attempts[-1].stopped_by
    if manifest.status == "interrupted" and stopped_by is not None:
        return exit_code(stopped_by)
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
