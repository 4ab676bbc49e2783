"""Which files of a job output are committed, and DuckDB over them: what every reader of an output starts from.

Only committed shards count: the part files of shards whose marker exists (a shard still being written, or left
by a killed attempt, is skipped; ``jobs.commit.committer`` writes the marker last). The output is listed once (a
recursive listing of ``_runs`` and one per table, each retried). DuckDB reads exactly those files; on an object
store through the job's own fsspec filesystem (registered with DuckDB), so S3 works with the job's credentials and
retries and without DuckDB's httpfs extension, which would have to be downloaded.

Shared by ``export``/``report`` (``exports.committed``) and ``track`` (``jobs.tracking``), which read the same
committed rows. Whatever keeps an output from being read is one ``UsageError`` with a one-line message.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass, field

import duckdb

from common.errors import UsageError
from common.storage import Location, retrying, uri_of
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
    committed: dict[str, set[str]] = defaultdict(set)
    plans: dict[str, str] = {}
    for path in _find(runs_folder):
        name = posixpath.relpath(path, runs_folder.path)
        if (run := layout.parse_manifest(name)) is not None:
            manifests[run] = Location(out.fs, path)
        elif (shard := layout.parse_marker(name)) is not None:
            committed[shard[0]].add(shard[1])
        elif (run := layout.parse_plan(name)) is not None:
            plans[run] = readable(out, path)
    if not manifests:
        raise _not_an_output(out)
    if run_id is not None and run_id not in manifests:
        known = sorted(manifests)
        shown = ", ".join(known[-5:]) + (f" and {len(known) - 5} older" if len(known) > 5 else "")
        raise UsageError(f"--run-id {run_id}: no such run in {out.uri} (runs: {shown})")
    files = CommittedFiles(manifests, {run: path for run, path in plans.items() if run in manifests})
    for table in layout.TABLES:
        found: dict[str, list[str]] = getattr(files, table)
        for path in sorted(_find(out.child(table))):
            part = layout.parse_part_file(path)
            if part and part[0] in manifests and part[1] in committed.get(part[0], ()):
                found.setdefault(part[0], []).append(readable(out, path))
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
