"""One publish's change to one table, committed in one transaction: what every set of tables (``tables.publish``)
does to each of its tables.

A change adds committed part files in place (``tables.data_files``), removes what they supersede and records the
units (shards, videos' tracks) the table then holds in a table property, all in the same commit: so a table never
holds a unit without saying so, nor says so without holding it, and publishing again adds nothing twice. What a
change supersedes is either rows (a filter: pyiceberg's copy-on-write delete, after the append, which may rewrite a
file without them into the warehouse) or whole data files (dropped in the append's own snapshot, never read).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from pyiceberg.expressions import BooleanExpression
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from common.storage import Location
from tables.data_files import data_file

_NO_MATCH = "Delete operation did not match any records"
"""pyiceberg's warning for a delete that found nothing: the superseded boxes of a frame that had none."""


@dataclass(frozen=True)
class Change:
    """What one publish does to one table."""

    units: int
    """Units (shards, videos) added; nothing is committed without one."""
    files: list[str]
    """Their part files, paths on the output's filesystem."""
    summary: dict[str, str]
    """Properties of the snapshot that adds them (which units it added)."""
    record: dict[str, str]
    """Table properties set in the same commit: the record of the units the table holds after it."""
    stale: BooleanExpression | None = None
    """The rows they supersede, deleted after the append."""
    dropped: tuple[DataFile, ...] = ()
    """The data files they supersede whole, removed in the append's snapshot."""


def commit(table: Table, out: Location, change: Change) -> int:
    """Make ``change`` to ``table`` in one transaction; the number of rows it removed."""
    before = _records(table)
    with table.transaction() as transaction:
        added = [data_file(out, path, transaction.table_metadata) for path in change.files]
        snapshot = transaction.update_snapshot(snapshot_properties=change.summary)
        with snapshot.overwrite() if change.dropped else snapshot.fast_append() as append:
            for file in added:
                append.append_data_file(file)
            for file in change.dropped:
                append.delete_data_file(file)
        if change.stale is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NO_MATCH)
                transaction.delete(change.stale)
        transaction.set_properties(change.record)
    table.refresh()
    return before + sum(file.record_count for file in added) - _records(table)


def _records(table: Table) -> int:
    """The rows the table holds now, as its current snapshot's summary counts them."""
    snapshot = table.current_snapshot()
    return int((snapshot and snapshot.summary and snapshot.summary.get("total-records")) or 0)
