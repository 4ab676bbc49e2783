"""The answered-inputs index: per model fingerprint, one Parquet file of every input earlier runs answered, and
the run ids whose answers it holds, so that ``--incremental`` starts by reading one file instead of every earlier
run's manifest, plan and markers (``jobs.planning.incremental`` keeps it up to date).

It is a cache of what the runs' own files say, never the truth: written whole (a rename locally, one PUT on an
object store), and by concurrent writers with the last one winning. Each writer writes the rows and ``covers`` it
read plus the runs it folded in itself, so whichever write wins, a run id is in ``covers`` only if all of that
run's answers are in the file. A run left out is read from its own files at the next start, and a file that
cannot be read counts as empty, so losing it costs time, never an answer.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.parquet import parquet_bytes
from common.storage import Location
from schemas.answered_index import ANSWERED_SCHEMA, COVERS_KEY


@dataclass(frozen=True)
class AnsweredIndex:
    answers: pa.Table
    """``ANSWERED_SCHEMA``: the inputs each run answered."""
    covers: frozenset[str]
    """Runs all of whose answers are in ``answers`` (some with none: another model's runs, runs that committed
    nothing). A run not covered may still have rows: those it had committed when it was last folded."""

    @classmethod
    def empty(cls) -> "AnsweredIndex":
        return cls(ANSWERED_SCHEMA.empty_table(), frozenset())

    @classmethod
    def read(cls, where: Location) -> "AnsweredIndex":
        """The index at ``where``; empty when there is none yet, or it cannot be read (it is then rebuilt from
        the runs' own files)."""
        try:
            table = pq.read_table(io.BytesIO(where.read_bytes()))
            covers = json.loads((table.schema.metadata or {})[COVERS_KEY])
        except (FileNotFoundError, KeyError, ValueError):  # ValueError: Arrow's and JSON's parse errors
            return cls.empty()
        if not table.schema.equals(ANSWERED_SCHEMA):  # written by another version of the job
            return cls.empty()
        return cls(table, frozenset(covers))

    def write(self, where: Location) -> None:
        metadata = {COVERS_KEY: json.dumps(sorted(self.covers)).encode()}
        where.write_bytes_atomic(parquet_bytes(self.answers.combine_chunks().replace_schema_metadata(metadata)))

    def with_runs(self, answers: dict[str, pa.Table], covered: set[str]) -> "AnsweredIndex":
        """This index with the rows of each run in ``answers`` replaced by its table (uri, size, version: all the
        run answers now, a superset of what it answered when last folded), and of those runs the ``covered``
        ones covered. One pass over the rows however many runs are folded."""
        replaced = pa.array(sorted(answers), pa.string())
        others = self.answers.filter(pc.invert(pc.is_in(self.answers.column("run_id"), replaced)))
        rows = [
            table.select(["uri", "size", "version"])
            .append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
            .cast(ANSWERED_SCHEMA)
            for run_id, table in answers.items()
        ]
        covers = (self.covers - answers.keys()) | (covered & answers.keys())
        return AnsweredIndex(pa.concat_tables([others, *rows]), frozenset(covers))

    def of_runs(self, run_ids: set[str]) -> "AnsweredIndex":
        """Only the rows and covers of ``run_ids``: a run whose manifest is gone answers nothing any more."""
        kept = pc.is_in(self.answers.column("run_id"), pa.array(sorted(run_ids), pa.string()))
        return AnsweredIndex(self.answers.filter(kept), self.covers & run_ids)

    def same_as(self, other: "AnsweredIndex") -> bool:
        """Whether writing this index over ``other`` would change nothing. Counting each run's rows is enough: a
        run's answers only grow as it commits shards."""
        return self.covers == other.covers and _rows_per_run(self.answers) == _rows_per_run(other.answers)


def _rows_per_run(answers: pa.Table) -> dict[str, int]:
    counts = answers.group_by("run_id").aggregate([("uri", "count")])
    return dict(zip(counts.column("run_id").to_pylist(), counts.column("uri_count").to_pylist()))
