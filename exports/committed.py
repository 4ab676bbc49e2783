"""What a job output has committed, read back: the one reader behind ``export`` and ``report``.

Only committed shards count: the part files of shards whose marker exists (a shard still being written, or left
by a killed attempt, is skipped; ``jobs.commit.committer`` writes the marker last). Of each frame the newest row
across runs is chosen (run ids sort by their start time), or only the rows of ``--run-id``.

The output is listed once (a recursive listing of ``_runs`` and one per table, each retried), and DuckDB reads
exactly the committed files into a database in a scratch folder, under a memory limit, spilling past it: the
chosen frames become a table, their boxes a view, and callers run their queries over both, taking back Arrow
batches or small results. On an object store DuckDB reads through the job's own fsspec filesystem (registered
with DuckDB), so S3 works with the job's credentials and retries and without DuckDB's httpfs extension, which
would have to be downloaded.

Whatever keeps an output from being read (not a job output, an unknown run, nothing committed, an unreadable
file) is one ``UsageError`` with a one-line message.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from common.errors import UsageError
from common.storage import Location, retrying, uri_of
from schemas import layout
from schemas.manifest import RunManifest
from schemas.tables import DETECTIONS_SCHEMA, STATUS_OK
from workers.errors import one_line

MEMORY_LIMIT = "256MB"
"""DuckDB's budget: past it, the dedupe, joins and sorts spill to the scratch folder (DuckDB itself takes more on
top). What a larger budget is worth is measured by benchmarks/export_scale.py (docs/performance.md)."""
BATCH_ROWS = 8192
"""Rows per Arrow batch taken from DuckDB: what Python holds of a stream at a time."""

FRAMES = "chosen_frames"
"""Table of the chosen row of each frame: run_id, source_uri, frame_index, timestamp_s, width, height,
num_detections, status, error."""
DETECTIONS = "chosen_detections"
"""View of the boxes of the chosen ``ok`` rows, every column of the ``detections`` table."""
_FRAME_COLUMNS = ("run_id", "source_uri", "frame_index", "timestamp_s", "width", "height", "num_detections")


@dataclass
class CommittedFiles:
    """What of an output a reader may read: run manifests and the part files of committed shards."""

    manifests: dict[str, Location]
    """Run id -> its manifest, for every run in the output."""
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
    if not _exists(out):
        raise UsageError(f"{out.uri} does not exist")
    runs_folder = out.child(layout.RUNS)
    manifests: dict[str, Location] = {}
    committed: dict[str, set[str]] = defaultdict(set)
    for path in _find(runs_folder):
        relative = posixpath.relpath(path, runs_folder.path)
        if (run := layout.parse_manifest(relative)) is not None:
            manifests[run] = Location(out.fs, path)
        elif (shard := layout.parse_marker(relative)) is not None:
            committed[shard[0]].add(shard[1])
    if not manifests:
        raise UsageError(f"{out.uri} is not a job output: no run manifest ({layout.manifest('<run_id>')})")
    if run_id is not None and run_id not in manifests:
        known = sorted(manifests)
        shown = ", ".join(known[-5:]) + (f" and {len(known) - 5} older" if len(known) > 5 else "")
        raise UsageError(f"--run-id {run_id}: no such run in {out.uri} (runs: {shown})")
    files = CommittedFiles(manifests)
    for table in layout.TABLES:
        found: dict[str, list[str]] = getattr(files, table)
        for path in sorted(_find(out.child(table))):
            part = layout.parse_part_file(path)
            if part and part[0] in manifests and part[1] in committed.get(part[0], ()):
                found.setdefault(part[0], []).append(path if out.is_local else uri_of(out.fs, path))
    return files


class CommittedRows:
    """A DuckDB session over one output's committed rows (a context manager): the ``chosen_frames`` table and the
    ``chosen_detections`` view, for the caller's queries.

    DuckDB's database and spill files go to a new folder in ``temp_dir`` (the system's when None), removed at
    close; ``memory_limit`` is DuckDB's budget (``MEMORY_LIMIT`` when None); ``progress`` shows DuckDB's own
    progress bar for long queries (on a terminal)."""

    def __init__(
        self,
        out: Location,
        run_id: str | None = None,
        *,
        temp_dir: str | None = None,
        memory_limit: str | None = None,
        progress: bool = False,
    ) -> None:
        self.out = out
        self.run_id = run_id
        self.files = committed_files(out, run_id)
        if not self.files.of(layout.FRAMES, run_id):
            raise UsageError(f"{self.what} has no committed frames (no shard of it has finished)")
        self._scratch = tempfile.mkdtemp(prefix="yolonas-output-", dir=temp_dir)
        self._manifests: dict[str, RunManifest] = {}
        try:
            self.db = _connect(self._scratch, memory_limit or MEMORY_LIMIT, progress, out)
            self._choose_frames()
            self._choose_detections()
        except BaseException:
            self.close()
            raise

    @property
    def what(self) -> str:
        """The rows read, as messages name them: the run asked for, or the output."""
        return f"run {self.run_id}" if self.run_id else self.out.uri

    def __enter__(self) -> "CommittedRows":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        db = getattr(self, "db", None)
        if db is not None:
            db.close()  # closing twice is harmless
        shutil.rmtree(self._scratch, ignore_errors=True)

    def manifest(self, run_id: str) -> RunManifest:
        """The manifest of a run of this output (read once)."""
        if run_id not in self._manifests:
            where = self.files.manifests[run_id]
            try:
                self._manifests[run_id] = RunManifest.model_validate_json(where.read_bytes())
            except (OSError, ValidationError) as exc:
                raise UsageError(f"cannot read run manifest {where.uri}: {one_line(exc, keep='first')}") from None
        return self._manifests[run_id]

    def manifests(self) -> list[RunManifest]:
        """The manifests of the runs read: the one asked for, or every run of the output, oldest first."""
        return [self.manifest(run_id) for run_id in ([self.run_id] if self.run_id else sorted(self.files.manifests))]

    def sql(self, query: str, **params: Any) -> duckdb.DuckDBPyConnection:
        """Run ``query`` (``$name`` parameters); a read that fails is a ``UsageError``."""
        try:
            return self.db.execute(query, params or None)
        except duckdb.Error as exc:
            raise UsageError(f"cannot read {self.out.uri}: {one_line(exc, keep='first')}") from None

    def rows(self, query: str, **params: Any) -> list[tuple]:
        return self.sql(query, **params).fetchall()

    def scalar(self, query: str, **params: Any) -> Any:
        row = self.sql(query, **params).fetchone()
        return None if row is None else row[0]

    def stream(self, query: str, **params: Any) -> Iterator[pa.RecordBatch]:
        """Batches of a query's result as DuckDB makes them; each stream has its own connection, so several can be
        read side by side."""
        cursor = self.db.cursor()
        try:
            yield from cursor.sql(query, params=params or None).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise UsageError(f"cannot read {self.out.uri}: {one_line(exc, keep='first')}") from None
        finally:
            cursor.close()

    def function(self, name: str, fn: Callable[[str | None], str]) -> None:
        """Make ``fn`` a SQL function of one string (``error_kind(error)``)."""
        self.db.create_function(name, fn, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"))

    def _choose_frames(self) -> None:
        self.sql(
            f"""create table {FRAMES} as
                select {", ".join(_FRAME_COLUMNS)}, status, error
                from {_parquet(self.files.of(layout.FRAMES, self.run_id))}
                qualify row_number() over (partition by source_uri, frame_index order by run_id desc) = 1"""
        )
        if not self.scalar(f"select count(*) from {FRAMES}"):
            raise UsageError(f"{self.what} has no committed frames (its shards hold no rows)")

    def _choose_detections(self) -> None:
        """The view of the chosen rows' boxes. Within one run every frame has one row and only ``ok`` rows have
        boxes, so when the files are one run's (``--run-id``, or an output of one run) the join is skipped."""
        files = self.files.of(layout.DETECTIONS, self.run_id)
        if not files:
            self.db.register("no_detections", DETECTIONS_SCHEMA.empty_table())
            self.sql(f"create view {DETECTIONS} as select * from no_detections")
            return
        one_run = self.run_id is not None or sum(1 for paths in self.files.detections.values() if paths) == 1
        join = (
            ""
            if one_run
            else f"""semi join {FRAMES} s on d.run_id = s.run_id and d.source_uri = s.source_uri
                     and d.frame_index = s.frame_index and s.status = '{STATUS_OK}'"""
        )
        self.sql(f"create view {DETECTIONS} as select d.* from {_parquet(files)} d {join}")


def _parquet(files: list[str]) -> str:
    """``read_parquet`` of exactly ``files``, spelt out (a view cannot take parameters)."""
    return f"read_parquet([{', '.join(map(sql_literal, files))}], hive_partitioning = false)"


def sql_literal(value: str) -> str:
    """``value`` as a SQL string literal (paths may hold quotes)."""
    return "'" + value.replace("'", "''") + "'"


def _connect(folder: str, memory_limit: str, progress: bool, out: Location) -> duckdb.DuckDBPyConnection:
    """A DuckDB database on disk in ``folder``: its tables and spills stay out of memory."""
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
