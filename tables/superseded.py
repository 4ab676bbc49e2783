"""The rows a publish supersedes: of each frame only the newest row across runs stays, as ``export`` reads them.

The rule is ``exports.committed``'s: a frame is its ``source_uri`` and ``frame_index``, and its newest row is the
one of the highest ``run_id`` (run ids sort by their start). The frames a publish adds are compared with each other
and with the ``frames`` table's rows of the same inputs; every row of an older run is named exactly, by run, input
and frame, in one filter that deletes it from ``frames`` and its boxes from ``detections``. An older run's shard
published after a newer run's is handled the same way: its own rows are the ones deleted.

Both the lookup and the delete are filters that pyiceberg first checks against each file's bounds, and a set of
more than 200 values rules out no file. So each term carries a URI range as well (a shard's inputs are a stretch
of its run's sorted plan): the table's files that cannot overlap it are never read. The inputs of one run whose
superseded frames are the same (every still image: frame 0) share one term, so the filter grows with the runs and
the videos concerned, not with the photos.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.expressions import (
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    In,
    LessThanOrEqual,
    Or,
    Reference,
)
from pyiceberg.expressions.literals import literal
from pyiceberg.table import Table

from common.committed_files import relative
from common.storage import Location

KEY_COLUMNS = ("run_id", "source_uri", "frame_index")


def superseded(frames_table: Table, out: Location, added_frames: Sequence[str]) -> BooleanExpression | None:
    """The filter of the rows that the frames in ``added_frames`` (part files of ``frames`` in ``out``, as
    ``common.committed_files`` lists them) and the table's rows of the same inputs supersede; None when they
    supersede none."""
    if not added_frames:
        return None
    paths = [out.child(relative(out, path)).path for path in added_frames]
    files = [pq.read_table(path, columns=list(KEY_COLUMNS), filesystem=out.fs) for path in paths]
    added = pa.concat_tables(files)
    spans = [_within("source_uri", file.column("source_uri")) for file in files if file.num_rows]
    present = (
        frames_table.scan(row_filter=_any(spans), selected_fields=KEY_COLUMNS).to_arrow()
        if spans and frames_table.current_snapshot() is not None
        else added.schema.empty_table()
    )
    db = duckdb.connect()
    db.register("added", added)
    db.register("present", present.select(list(KEY_COLUMNS)).cast(added.schema))
    stale = db.sql(
        """with keys as (
               select * from added
               union all select * from present where source_uri in (select source_uri from added))
           select run_id, frames, list(source_uri order by source_uri) from (
               select run_id, source_uri, list(distinct frame_index order by frame_index) as frames
               from (select *, max(run_id) over (partition by source_uri, frame_index) as newest from keys)
               where run_id < newest group by run_id, source_uri)
           group by run_id, frames order by run_id, frames"""
    ).fetchall()
    db.close()
    groups = [
        And(_equal("run_id", run), _inputs(inputs), _among("frame_index", frames)) for run, frames, inputs in stale
    ]
    return _any(groups) if groups else None


def _equal(column: str, value: str) -> BooleanExpression:
    return EqualTo(term=Reference(column), value=literal(value))


def _among(column: str, values: Iterable[str | int]) -> BooleanExpression:
    return In(term=Reference(column), values={literal(value) for value in values})


def _inputs(uris: list[str]) -> BooleanExpression:
    """``source_uri`` among ``uris``, with their range for the file bounds to rule out when they are several."""
    if len(uris) == 1:
        return _equal("source_uri", uris[0])
    return And(_within("source_uri", pa.chunked_array([uris])), _among("source_uri", uris))


def _within(column: str, values: pa.ChunkedArray) -> BooleanExpression:
    """``column`` between the least and the greatest of ``values`` (one or more)."""
    bounds = pc.min_max(values)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    return And(
        GreaterThanOrEqual(term=Reference(column), value=literal(low)),
        LessThanOrEqual(term=Reference(column), value=literal(high)),
    )


def _any(filters: Sequence[BooleanExpression]) -> BooleanExpression:
    """``Or`` of ``filters`` (one or more) as a balanced tree: pyiceberg's visitors recurse, and a chain as deep as
    the filters are many would pass Python's recursion limit."""
    if len(filters) == 1:
        return filters[0]
    middle = len(filters) // 2
    return Or(_any(filters[:middle]), _any(filters[middle:]))
