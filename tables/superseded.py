"""The rows a publish supersedes: of each frame only the newest row across runs stays, as ``export`` reads them.

The rule is ``exports.committed``'s: a frame is its ``source_uri`` and ``frame_index``, and its newest row is the
one of the highest ``run_id`` (run ids sort by their start). The frames a publish adds are compared with the
``frames`` table's rows of the same inputs (the table's own scan, pruned by its file statistics, so only files
whose URI range holds one of them are read) and with each other; every row of an older run is named exactly, by
run, input and frame, in one filter that deletes it from ``frames`` and its boxes from ``detections``. The inputs
of one run whose stale frames are the same (every still image: frame 0) share one term, so the filter grows with
the runs and the videos concerned, not with the photos. An older
run's shard published after a newer run's is handled the same way: its own rows are the ones deleted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import And, BooleanExpression, EqualTo, In, Or, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table

from common.storage import Location

KEY_COLUMNS = ("run_id", "source_uri", "frame_index")


def superseded(frames_table: Table, out: Location, added_frames: Sequence[str]) -> BooleanExpression | None:
    """The filter of the rows that the frames in ``added_frames`` (part files of ``frames`` on ``out``'s
    filesystem) and the table's rows of the same inputs supersede; None when they supersede none."""
    if not added_frames:
        return None
    added = pa.concat_tables(pq.read_table(path, columns=list(KEY_COLUMNS), filesystem=out.fs) for path in added_frames)
    uris = set(added.column("source_uri").to_pylist())
    present = (
        frames_table.scan(row_filter=_among("source_uri", uris), selected_fields=KEY_COLUMNS).to_arrow()
        if frames_table.current_snapshot() is not None
        else added.schema.empty_table()
    )
    keys = pa.concat_tables([added, present.select(list(KEY_COLUMNS)).cast(added.schema)])
    db = duckdb.connect()
    db.register("keys", keys)
    stale = db.sql(
        """select run_id, frames, list(source_uri order by source_uri) from (
               select run_id, source_uri, list(distinct frame_index order by frame_index) as frames
               from (select *, max(run_id) over (partition by source_uri, frame_index) as newest from keys)
               where run_id < newest group by run_id, source_uri)
           group by run_id, frames order by run_id, frames"""
    ).fetchall()
    db.close()
    groups = [
        And(_equal("run_id", run), _among("source_uri", inputs), _among("frame_index", frames))
        for run, frames, inputs in stale
    ]
    return _any(groups) if groups else None


def _equal(column: str, value: str) -> BooleanExpression:
    return EqualTo(term=Reference(column), value=literal(value))


def _among(column: str, values: Iterable[str | int]) -> BooleanExpression:
    return In(term=Reference(column), values={literal(value) for value in values})


def _any(filters: Sequence[BooleanExpression]) -> BooleanExpression:
    """``Or`` of ``filters`` (one or more) as a balanced tree: pyiceberg's visitors recurse, and a chain as deep as
    the filters are many would pass Python's recursion limit."""
    if len(filters) == 1:
        return filters[0]
    middle = len(filters) // 2
    return Or(_any(filters[:middle]), _any(filters[middle:]))
