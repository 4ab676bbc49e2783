"""Which files of a job output are committed, and DuckDB over them: what every reader of an output starts from.

Only committed shards count: the part files of a shard's commit, the marker that counts by ``common.epochs``' rule,
of its run, shard and epoch (a shard still being written, or left by a killed attempt, is skipped:
``jobs.commit.committer`` writes the marker last; so is a marker a writer that had lost the output landed late).
The output is listed once (a recursive listing of ``_runs``, whose epoch records are among it, and one per table,
each retried); of the epoch records only those a marker needs are read. DuckDB reads exactly those files; on an object
store through the job's own fsspec filesystem (registered with DuckDB), so S3 works with the job's credentials and
retries and without DuckDB's httpfs extension, which would have to be downloaded.

Shared by ``export``/``report`` (``exports.committed``) and ``track`` (``jobs.tracking``), which read the same
committed rows. Whatever keeps an output from being read is one ``UsageError`` with a one-line message.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

import duckdb
from pydantic import ValidationError

from common.epochs import EpochRecords
from common.errors import UsageError
from common.retries import retrying
from common.storage import Location, uri_of
from schemas import layout
from workers.errors import one_line

BATCH_ROWS = 8192
"""Rows per Arrow batch taken from DuckDB: what Python holds of a stream at a time."""


@dataclass
class CommittedFiles:
    """What of an output a reader may read: run manifests and the part files of committed shards."""

    manifests: dict[str, Location]
    """Run id -> its manifest, for every run in the output."""
    plans: dict[str, str] = field(default_factory=dict)
    """Run id -> its saved plan (as DuckDB reads it), for the runs that have one."""
    frames: dict[str, list[str]] = field(default_factory=dict)
    detections: dict[str, list[str]] = field(default_factory=dict)
    """Run id -> part files of its committed shards (paths as DuckDB reads them), for each table."""

    def of(self, table: str, run_id: str | None = None) -> list[str]:
        """Part files of ``table`` (``frames`` or ``detections``): of ``run_id``, or of every run."""
        files: dict[str, list[str]] = getattr(self, table)
        return list(files.get(run_id, [])) if run_id else [path for paths in files.values() for path in paths]


def committed_files(out: Location, run_id: str | None = None) -> CommittedFiles:
    """List the output and keep the part files of committed shards. Raises ``UsageError`` for what is not a job
    output, or a ``run_id`` it does not hold."""
    require_output(out)
    runs_folder = out.child(layout.RUNS)
    manifests: dict[str, Location] = {}
    markers: list[layout.ShardFile] = []
    epochs: list[int] = []
    plans: dict[str, str] = {}
    for path in _find(runs_folder):
        name = posixpath.relpath(path, runs_folder.path)
        if (run := layout.parse_manifest(name)) is not None:
            manifests[run] = Location(out.fs, path)
        elif (marker := layout.parse_marker(name)) is not None:
            markers.append(marker)
        elif (epoch := layout.parse_epoch_record(name)) is not None:
            epochs.append(epoch)
        elif (run := layout.parse_plan(name)) is not None:
            plans[run] = readable(out, path)
    if not manifests:
        raise _not_an_output(out)
    if run_id is not None and run_id not in manifests:
        known = sorted(manifests)
        shown = ", ".join(known[-5:]) + (f" and {len(known) - 5} older" if len(known) > 5 else "")
        raise UsageError(f"--run-id {run_id}: no such run in {out.uri} (runs: {shown})")
    try:
        commits = EpochRecords(out, epochs).counted(marker for marker in markers if marker.run_id in manifests)
    except (OSError, ValidationError) as exc:
        raise UsageError(f"cannot read the epoch records of {out.uri}: {one_line(exc, keep='first')}") from None
    files = CommittedFiles(manifests, {run: path for run, path in plans.items() if run in manifests})
    for table in layout.TABLES:
        found: dict[str, list[str]] = getattr(files, table)
        for path in sorted(_find(out.child(table))):
            part = layout.parse_part_file(path)
            if part and commits.get((part.run_id, part.shard_id)) == part:
                found.setdefault(part.run_id, []).append(readable(out, path))
    return files


def readable(out: Location, path: str) -> str:
    """A path of ``out``'s filesystem as DuckDB reads it: as is locally, else its URI (through the registered
    fsspec filesystem)."""
    return path if out.is_local else uri_of(out.fs, path)


def relative(out: Location, path: str) -> str:
    """A path DuckDB read (``readable``) back relative to ``out``."""
    return posixpath.relpath(path if out.is_local else path.split("://", 1)[-1], out.path)


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal (paths may hold quotes)."""
    return "'" + value.replace("'", "''") + "'"


def connect(folder: str, memory_limit: str, progress: bool, out: Location) -> duckdb.DuckDBPyConnection:
    """A DuckDB database on disk in ``folder`` (its tables and spills stay out of memory) that reads ``out``."""
    db = duckdb.connect(
        posixpath.join(folder, "output.duckdb"),
        config={
            "memory_limit": memory_limit,
            "temp_directory": posixpath.join(folder, "spill"),
            "preserve_insertion_order": False,
            # Never fetch extensions (httpfs for s3://): object stores go through the registered fsspec filesystem.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    db.execute(f"set enable_progress_bar = {'true' if progress else 'false'}")
    if not out.is_local:
        db.register_filesystem(out.fs)
    return db


def require_output(out: Location) -> None:
    """``UsageError`` unless ``out`` exists and has a ``_runs/`` folder: a quick look, for a command that takes the
    output's lease (which writes into it) before it lists the output."""
    if not _exists(out):
        raise UsageError(f"{out.uri} does not exist")
    if not _exists(out.child(layout.RUNS)):
        raise _not_an_output(out)


def _not_an_output(out: Location) -> UsageError:
    return UsageError(f"{out.uri} is not a job output: no run manifest ({layout.manifest('<run_id>')})")


def _exists(where: Location) -> bool:
    try:
        return retrying(lambda: where.fs.exists(where.path))
    except OSError as exc:
        raise UsageError(f"cannot read {where.uri}: {one_line(exc, keep='first')}") from None


def _find(folder: Location) -> list[str]:
    """Every file under ``folder`` (none when it does not exist), in one recursive listing."""
    if not _exists(folder):
        return []
    try:
        return retrying(lambda: folder.fs.find(folder.path))
    except OSError as exc:
        raise UsageError(f"cannot read {folder.uri}: {one_line(exc, keep='first')}") from None
