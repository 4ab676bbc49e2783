"""One run of the detection job, from config to committed output, manifest and exit code.

Order of work: check the output and the weights (usage errors surface in seconds), list and plan (or reload
the plan of the run being resumed), skip committed shards, stream the rest through Ray Data, then write the
manifest and print the summary.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Callable, TextIO, TypeVar

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from jobs.collector import ShardCollector
from jobs.commit import ShardCommitter
from jobs.decode_stage import Decoding
from jobs.errors import UsageError
from jobs.execution import MAX_SHARD_ATTEMPTS, execute
from jobs.incremental import new_or_changed
from jobs.listing import Listing, list_sources
from jobs.model_setup import ModelSetup, prepare_model
from jobs.pipeline import Resources, build_dataset, run_pipeline
from jobs.planning import Plan
from jobs.progress import Progress
from jobs.ray_session import cluster_cpus, cluster_gpus, start_ray
from jobs.run_store import RunStore
from jobs.segments import plan_videos
from jobs.storage import Location, location
from schemas.config import JobConfig
from schemas.manifest import Counts, ModelInfo, PlanInfo, RunManifest, ShardCommit
from workers.detector import DEFAULT_BATCH_SIZE, Runtime
from workers.trace_cache import traced_model
from workers.video import Sampling

T = TypeVar("T")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR_RATE = 0, 1, 2, 3


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
    error: str | None = None
    failed: dict[str, str] = {}
    try:
        if run.pending.num_rows:
            failed = _process(run, progress)
            if failed:
                first = min(failed)
                error = f"{len(failed)} shard(s) failed after {MAX_SHARD_ATTEMPTS} attempts; {first}: {failed[first]}"
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as exc:  # the run failed as a whole; committed shards stay and a rerun resumes
        error = describe_failure(exc)
    finally:
        progress.close()
    return _close_run(run, progress, failed, error, started, stream)


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
    attempt: dict[str, Any]
    """This attempt's record in the manifest (``manifest.attempts[-1]``), filled in as the attempt goes."""


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
    manifest, plan, resumed = _resume_or_plan(config, setup, listing, store, sampling, stream)
    committer = ShardCommitter(out, manifest.run_id, setup.class_names)
    committed = committer.committed()
    cleaned = committer.clean_uncommitted(set(committed)) if resumed else 0
    pending = plan.pending(set(committed))
    attempt = {
        "started_at": _now(),
        "pending_items": pending.num_rows,
        "committed_shards_before": len(committed),
        "leftovers_removed": cleaned,
    }
    manifest.status = "running"
    manifest.attempts.append(attempt)
    store.save(manifest)
    _announce(stream, manifest, plan, pending.num_rows, listing.skipped)
    return _Run(config, out, setup, store, sampling, manifest, plan, committer, pending, attempt)


def _process(run: _Run, progress: Progress) -> dict[str, str]:
    """Stream the pending shards through Ray Data, committing each as it completes; the shards that failed."""
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
        collector = ShardCollector(run.committer, run.plan.shard_sizes, progress.advance)
        try:
            dataset = build_dataset(items, setup, config.model, resources, decoding, traced)
            run_pipeline(dataset, collector)
        except Exception as exc:  # an infrastructure failure: execute() retries or isolates the shards
            return describe_failure(exc)
        finally:
            progress.advance(*(-n for n in collector.uncommitted_counts()))
        return None

    shards = sorted(set(run.pending.column("shard_id").to_pylist()))
    outcome = execute(shards, process_shards, run.committer.committed_ids)
    run.attempt["pipeline_runs"] = outcome.runs
    return outcome.failed


def _start_cluster(run: _Run) -> tuple[Resources, bytes | None]:
    """Join or start Ray and size the pipeline to it; with the model for CPU actors when they get one.

    On CPU the model actors load the fused model exported (ONNX) or traced (TorchScript) here, skipping
    super-gradients' import, most of an actor's start-up; that runs (or comes from the cache) while Ray starts.
    On GPU actors build the model themselves, on their device."""
    config, setup = run.config, run.setup
    tracing = None
    if config.device != "cuda":
        tracing = _in_background(cpu_model, config, setup)
    start_ray(config.ray_address)
    resources = _resources(config)
    run.manifest.model = run.manifest.model.model_copy(
        update={
            "device": resources.device,
            "batch_size": resources.batch_size,
            "workers": resources.workers,
            "runtime": resources.runtime,
        }
    )
    traced = tracing.result() if tracing is not None and resources.device == "cpu" else None
    return resources, traced


def cpu_model(config: JobConfig, setup: ModelSetup) -> bytes:
    """The fused model CPU actors load for ``config`` (ONNX for ONNX Runtime, else TorchScript), from the model
    cache when it holds it, else made and stored there."""
    return traced_model(config.model, setup.weights, setup.spec, setup.precision, _runtime(config, "cpu"))


def _close_run(
    run: _Run, progress: Progress, failed: dict[str, str], error: str | None, started: float, stream: TextIO
) -> RunResult:
    """Record how the attempt ended in the manifest, print the summary, and give the exit code."""
    wall_s = time.monotonic() - started
    if progress.first_result_at is not None:
        run.attempt["startup_s"] = round(progress.first_result_at - started, 3)
        run.attempt["process_startup_s"] = round(_since_process_start(progress.first_result_at), 3)
    commits = run.committer.committed()
    manifest = _finish(run.manifest, commits, run.plan, failed, error, wall_s, progress.rate, run.attempt)
    run.store.save(manifest)
    exit_code = _exit_code(manifest, run.config.max_error_rate)
    _summary(stream, manifest, run.out, wall_s, progress.rate, exit_code)
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


def _resume_or_plan(
    config: JobConfig, setup: ModelSetup, listing: Listing, store: RunStore, sampling: Sampling, stream: TextIO
) -> tuple[RunManifest, Plan, bool]:
    """The run to go on with: the last run of the same job when it is to be resumed (always, unless
    ``--incremental`` finds it finished), else a new run planned from the listing. True when resumed."""
    fingerprint = config.fingerprint(setup.weights.sha256)
    model_fingerprint = config.model_fingerprint(setup.weights.sha256)
    previous = store.latest_with(fingerprint)
    if previous is not None and not (config.incremental and previous.status != "running"):
        plan = Plan.load(store.plan_location(previous.run_id))
        new, gone = plan.drift(listing)
        if new or gone:
            print(
                f"note: resuming run {previous.run_id} with its saved plan; since then {new} inputs appeared and "
                f"{gone} disappeared (use --incremental for the new ones, --overwrite to plan afresh)",
                file=stream,
            )
        return previous, plan, True
    if config.incremental:
        listed = len(listing)
        listing = new_or_changed(listing, store, model_fingerprint)
        print(f"incremental: {len(listing)} of {listed} inputs are new or changed", file=stream)
    now = datetime.now(timezone.utc)
    run_id = RunStore.new_run_id(now)
    videos = plan_videos(
        pc.filter(listing.table.column("uri"), pc.equal(listing.table.column("kind"), "video")).to_pylist(),
        sampling,
        config.video_segment_frames,
        config.storage_options,
    )
    plan = Plan.from_listing(listing, config.shard_size, now.strftime("%Y-%m-%d"), videos)
    plan.save(store.plan_location(run_id))
    manifest = _new_manifest(config, setup, run_id, (fingerprint, model_fingerprint), now, plan, listing.skipped)
    return manifest, plan, False


def describe_failure(exc: BaseException) -> str:
    """One line for a failed run: the root cause's type and message, not Ray's wrappers around it.

    Ray re-raises worker failures with the original traceback as text, so the first exception line of that
    text that is not Ray's own is the cause.
    """
    for line in str(exc).splitlines():
        match = _EXCEPTION_LINE.match(line.strip())
        if match and not match.group(1).startswith("ray."):
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}"


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$")


def _writable_output(config: JobConfig) -> Location:
    """The output location, proven writable by writing and removing a probe file."""
    out = location(config.output, config.storage_options)
    probe = out.child("_runs", f".write-probe-{RunStore.new_run_id()}")
    try:
        probe.write_bytes_atomic(b"")
        probe.fs.rm(probe.path)
    except (OSError, PermissionError) as exc:
        raise UsageError(f"cannot write to output {config.output}: {exc.strerror or exc}") from None
    return out


def _resources(config: JobConfig) -> Resources:
    gpus = cluster_gpus()
    device = config.device or ("cuda" if gpus else "cpu")
    if device == "cuda" and not gpus and not (config.ray_address or os.environ.get("RAY_ADDRESS")):
        # A cluster may bring GPU nodes on demand (autoscaling); a local Ray never will.
        raise UsageError("--device cuda was asked for but this machine has no GPU")
    workers = config.workers or (gpus * config.actors_per_gpu if device == "cuda" else 1)
    cpus = cluster_cpus()
    return Resources(
        device=device,
        workers=workers,
        batch_size=config.batch_size or DEFAULT_BATCH_SIZE[device],
        torch_threads=max(1, cpus // workers),
        runtime=_runtime(config, device),
        actors_per_gpu=config.actors_per_gpu,
        decode_workers=config.decode_workers,
    )


def _runtime(config: JobConfig, device: str) -> Runtime:
    """``--runtime`` on ``device``: auto takes ONNX Runtime where it runs (fp32 on a CPU: the same boxes, about
    1.3x faster in benchmarks/onnx_runtime.py), torch elsewhere."""
    fits = device == "cpu" and config.precision == "fp32"
    if config.runtime == "onnxruntime" and not fits:
        raise UsageError(f"--runtime onnxruntime runs fp32 on CPUs only, not {config.precision} on {device}")
    if config.runtime == "auto":
        return "onnxruntime" if fits else "torch"
    return config.runtime


def _new_manifest(
    config: JobConfig,
    setup: ModelSetup,
    run_id: str,
    fingerprints: tuple[str, str],
    now: datetime,
    plan: Plan,
    skipped: Counter,
) -> RunManifest:
    return RunManifest(
        run_id=run_id,
        fingerprint=fingerprints[0],
        model_fingerprint=fingerprints[1],
        run_date=now.strftime("%Y-%m-%d"),
        status="running",
        config=config.public_dump(),
        model=ModelInfo(
            name=config.model,
            weights=setup.weights.source,
            weights_sha256=setup.weights.sha256,
            checkpoint_key=setup.weights.checkpoint_key,
            num_classes=setup.weights.num_classes,
            class_names=list(setup.class_names),
            device=config.device or "auto",
            batch_size=config.batch_size or 0,
            workers=config.workers or 0,
            precision=config.precision,
            runtime=config.runtime,
        ),
        plan=PlanInfo(
            inputs=plan.inputs,
            items=plan.table.num_rows,
            shards=len(plan.shard_sizes),
            shard_size=config.shard_size,
            plan_file=f"_runs/{run_id}/plan.parquet",
            skipped=dict(skipped),
        ),
        timings={"created_at": now.isoformat(timespec="seconds")},
        versions=_versions(),
    )


def _finish(
    manifest: RunManifest,
    commits: dict[str, ShardCommit],
    plan: Plan,
    failed: dict[str, str],
    error: str | None,
    wall_s: float,
    rate: float,
    attempt: dict,
) -> RunManifest:
    counts = Counts()
    kinds: Counter = Counter()
    for commit in commits.values():
        counts.frames += commit.frames
        counts.ok += commit.ok
        counts.error += commit.errors
        counts.detections += commit.detections
        kinds.update(commit.error_kinds)
    counts.error_kinds = dict(kinds)
    shards = {s: ("committed" if s in commits else "failed" if s in failed else "pending") for s in plan.shard_sizes}
    complete = all(state == "committed" for state in shards.values())
    attempt.update({"finished_at": _now(), "wall_s": round(wall_s, 3), "frames_per_s": round(rate, 3), "error": error})
    return manifest.model_copy(
        update={
            "counts": counts,
            "shards": shards,
            "status": "completed" if complete and error is None else "failed",
            "error": error,
            "failed_shards": failed,
            "timings": {**manifest.timings, "last_finished_at": _now(), "last_wall_s": round(wall_s, 3)},
        }
    )


def _exit_code(manifest: RunManifest, max_error_rate: float) -> int:
    if manifest.status != "completed":
        return EXIT_FAILED
    if manifest.counts.frames and manifest.counts.error / manifest.counts.frames > max_error_rate:
        return EXIT_ERROR_RATE
    return EXIT_OK


def _announce(stream: TextIO, manifest: RunManifest, plan: Plan, pending: int, skipped: Counter) -> None:
    skipped_text = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())) or "none"
    print(
        f"run {manifest.run_id}: {plan.inputs} inputs ({plan.table.num_rows} work items, about "
        f"{plan.expected_frames} frames) in {len(plan.shard_sizes)} shards, {pending} items to process; "
        f"skipped files: {skipped_text}",
        file=stream,
        flush=True,
    )


def _summary(stream: TextIO, manifest: RunManifest, out: Location, wall_s: float, rate: float, exit_code: int) -> None:
    c = manifest.counts
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(c.error_kinds.items()))
    lines = [
        f"run {manifest.run_id} {manifest.status}" + (f": {manifest.error}" if manifest.error else ""),
        f"  frames: {c.frames} ({c.ok} ok, {c.error} error{' — ' + kinds if kinds else ''}); "
        f"detections: {c.detections}",
        f"  wall time {wall_s:.1f}s" + (f"; {rate:.2f} frames/s once results flowed" if rate > 0 else ""),
        f"  output: {out.uri}  (manifest: _runs/{manifest.run_id}.json)",
    ]
    if exit_code == EXIT_ERROR_RATE:
        lines.append("  exit 3: the share of error frames exceeds --max-error-rate")
    print("\n".join(lines), file=stream, flush=True)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("yolonas-batch", "super-gradients", "torch", "ray", "pyarrow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _since_process_start(moment: float) -> float:
    """Seconds from this process's start to ``moment`` (``time.monotonic()``): start-up as the person who typed
    the command waits for it, imports included, where ``startup_s`` counts from the job's start."""
    return time.time() - (time.monotonic() - moment) - psutil.Process().create_time()


def _expected_frames(items: "pa.Table") -> int:
    return pc.sum(items.column("expected_frames")).as_py() or 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
