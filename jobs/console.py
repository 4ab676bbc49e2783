"""What a run tells the person who started it: the announcement before work starts, the summary at the end."""

from __future__ import annotations

from collections import Counter
from typing import TextIO

from common.cli import PROG
from common.errors import EXIT_ERROR_RATE
from common.storage import Location
from jobs.pipeline.resources import Resources
from jobs.planning.plan import Plan
from schemas import layout
from schemas.config import JobConfig
from schemas.manifest import RunManifest
from workers.runtime_choice import Measured, native_bf16


def announce(stream: TextIO, manifest: RunManifest, plan: Plan, pending: int, skipped: Counter) -> None:
    """One line: the run's id, what was planned, how much is left, and which files were not planned and why."""
    skipped_text = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())) or "none"
    print(
        f"run {manifest.run_id}: {plan.inputs} inputs ({plan.table.num_rows} work items, about "
        f"{plan.expected_frames} frames) in {len(plan.shard_sizes)} shards, {pending} items to process; "
        f"skipped files: {skipped_text}",
        file=stream,
        flush=True,
    )


def summary(stream: TextIO, manifest: RunManifest, out: Location, exit_code: int) -> None:
    """Counts by status and error kind, wall time, rate, and where the output is."""
    c = manifest.counts
    attempt = manifest.attempts[-1]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(c.error_kinds.items()))
    rate = attempt.frames_per_s or 0.0
    lines = [
        f"run {manifest.run_id} {manifest.status}" + (f": {manifest.error}" if manifest.error else ""),
        f"  frames: {c.frames} ({c.ok} ok, {c.error} error{' — ' + kinds if kinds else ''}); "
        f"detections: {c.detections}",
        f"  wall time {attempt.wall_s or 0.0:.1f}s"
        + (f"; {rate:.2f} frames/s once results flowed" if rate > 0 else ""),
        f"  output: {out.uri}  (manifest: {layout.manifest(manifest.run_id)})",
    ]
    if manifest.iceberg is not None:
        lines.append(_iceberg_line(manifest))
    if manifest.model.license:
        lines.append(f"  weights: {manifest.model.license}")
    if exit_code == EXIT_ERROR_RATE:
        lines.append("  exit 3: the share of error frames exceeds --max-error-rate")
    print("\n".join(lines), file=stream, flush=True)


def _iceberg_line(manifest: RunManifest) -> str:
    """How many of the run's committed shards the Iceberg tables hold, and why not all when the last publish
    failed."""
    state = manifest.iceberg
    assert state is not None
    committed = sum(1 for s in manifest.shards.values() if s == "committed")
    line = (
        f"  iceberg: {state.namespace}.frames and {state.namespace}.detections hold {state.published_shards} of the "
        f"run's {committed} committed shards"
    )
    if state.error is None:
        return line
    return f"{line}; the last publish failed ({state.error}): the next run or '{PROG} iceberg' adds the rest"


def cpu_notes(config: JobConfig, resources: Resources, measured: Measured | None) -> list[str]:
    """What the console says of a run on CPU model actors: the runtime measured the faster, and the settings that
    would run faster here or that pay on GPUs only."""
    notes = [measured.line(resources.torch_threads)] if measured is not None else []
    if config.precision == "fp32" and native_bf16():
        notes.append(
            "this CPU computes bf16 itself (AVX512-BF16 or AMX): --precision bf16 may run faster, with boxes that "
            "differ from fp32's as docs/performance.md#precision measures"
        )
    if config.decode == "device":
        notes.append(
            "decode: device on CPU model actors: each actor decodes its JPEGs itself, between forward passes, "
            "where decode tasks would decode them beside it; --decode device pays on GPUs"
        )
    return notes
