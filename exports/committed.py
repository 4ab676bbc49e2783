"""What a job output has committed, read back: the one reader behind ``export`` and ``report``.

Only committed shards count (``common.committed_files``). Of each frame the newest row across runs is chosen (run
ids sort by their start time), or only the rows of ``--run-id``. DuckDB reads exactly the committed files into a
database in a scratch folder, under a memory limit, spilling past it: the chosen frames become a table, their
boxes a view, and callers run their queries over both, taking back Arrow batches or small results.

Whatever keeps an output from being read (not a job output, an unknown run, nothing committed, an unreadable
file) is one ``UsageError`` with a one-line message.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any, Callable, Iterator

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from common.committed_files import BATCH_ROWS, committed_files, connect, sql_literal
from common.errors import UsageError
from common.storage import Location
from schemas import layout
from schemas.manifest import RunManifest
from schemas.tables import DETECTIONS_SCHEMA, STATUS_OK
from workers.errors import one_line

MEMORY_LIMIT = "256MB"
"""DuckDB's budget: past it, the dedupe, joins and sorts spill to the scratch folder (DuckDB itself takes more on
top). What a larger budget is worth is measured by benchmarks/export_scale.py (docs/performance.md)."""

FRAMES = "chosen_frames"
"""Table of the chosen row of each frame: run_id, source_uri, frame_index, timestamp_s, width, height,
num_detections, status, error."""
DETECTIONS = "chosen_detections"
"""View of the boxes of the chosen ``ok`` rows, every column of the ``detections`` table."""
_FRAME_COLUMNS = ("run_id", "source_uri", "frame_index", "timestamp_s", "width", "height", "num_detections")


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
            self.db = connect(self._scratch, memory_limit or MEMORY_LIMIT, progress, out)
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
