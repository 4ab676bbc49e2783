"""Publish a job output's committed shards to Iceberg tables: their own part files, added in place.

One call adds every committed shard a table does not hold yet (``tables.published``), in one transaction per
table: ``detections`` first, then ``frames``, so a frame a reader finds in ``frames`` has its boxes in
``detections`` already. The transaction that adds a shard's files also deletes the rows they supersede
(``tables.superseded``; pyiceberg's copy-on-write delete, which rewrites the few files concerned into the
warehouse) and records the shards as held, so each table holds exactly one row per frame, the one ``export`` reads,
and publishing again adds nothing. Only committed shards count (``common.committed_files``, the rule every
reader applies); the hive files stay the output's truth and are never changed.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog
from pyiceberg.expressions import BooleanExpression
from pyiceberg.table import Table

from common.committed_files import committed_files
from common.storage import Location
from schemas import layout
from tables import published
from tables.catalog import table_for
from tables.data_files import data_file
from tables.superseded import superseded

ORDER = (layout.DETECTIONS, layout.FRAMES)
"""The order the tables commit in: boxes before the frames that point readers at them."""
ADDED_SHARDS = "yolonas-batch.added-shards"
"""The snapshot summary property naming the shards a publish's append added (``tables.published``' form)."""
_NO_MATCH = "Delete operation did not match any records"
"""pyiceberg's warning for a delete that found nothing: the superseded boxes of a frame that had none."""

Shard = tuple[str, str]
"""(run id, shard id)."""


@dataclass
class Publication:
    """What one publish did, per table."""

    namespace: str
    shards: dict[str, int] = field(default_factory=dict)
    """Table -> shards added."""
    files: dict[str, int] = field(default_factory=dict)
    """Table -> part files added."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Table -> superseded rows deleted."""

    def line(self) -> str:
        """One line for the console."""
        names = {table: f"{self.namespace}.{table}" for table in ORDER}
        if not any(self.shards.values()):
            return f"iceberg: {names[layout.FRAMES]} and {names[layout.DETECTIONS]} already hold every committed shard"
        told = (
            f"{names[t]}: {self.shards[t]} shards added ({self.files[t]} files), superseded rows deleted: "
            f"{self.deleted[t]}"
            for t in reversed(ORDER)
        )
        return "iceberg: " + "; ".join(told)


def publish(out: Location, catalog: Catalog, namespace: str) -> Publication:
    """Add the committed shards of ``out`` that the tables ``namespace.frames`` and ``namespace.detections`` do not
    hold, making the tables when missing. ``UsageError`` for an output that is not a job's."""
    files = committed_files(out)
    tables = {name: table_for(catalog, namespace, name) for name in ORDER}
    pending = {name: _pending(files.of(name), published.read(tables[name].properties)) for name in ORDER}
    frames_by_shard = _by_shard(files.of(layout.FRAMES))
    adding = sorted(set(pending[layout.FRAMES]) | set(pending[layout.DETECTIONS]))
    stale = superseded(
        tables[layout.FRAMES], out, [path for shard in adding for path in frames_by_shard.get(shard, [])]
    )
    result = Publication(namespace)
    for name in ORDER:
        result.shards[name] = len(pending[name])
        result.files[name] = sum(map(len, pending[name].values()))
        result.deleted[name] = _commit(tables[name], out, pending[name], stale) if pending[name] else 0
    return result


def _commit(table: Table, out: Location, shards: dict[Shard, list[str]], stale: BooleanExpression | None) -> int:
    """Add ``shards``' files to ``table``, delete the ``stale`` rows and record the shards, in one transaction;
    the number of rows deleted."""
    before = _records(table)
    record = published.read(table.properties)
    with table.transaction() as transaction:
        added = [data_file(out, path, transaction.table_metadata) for paths in shards.values() for path in paths]
        summary = {ADDED_SHARDS: published.written(published.merged({}, shards))}
        with transaction.update_snapshot(snapshot_properties=summary).fast_append() as append:
            for file in added:
                append.append_data_file(file)
        if stale is not None:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NO_MATCH)
                transaction.delete(stale)
        transaction.set_properties({published.PROPERTY: published.written(published.merged(record, shards))})
    table.refresh()
    return before + sum(file.record_count for file in added) - _records(table)


def _records(table: Table) -> int:
    """The rows the table holds now, as its current snapshot's summary counts them."""
    snapshot = table.current_snapshot()
    return int((snapshot and snapshot.summary and snapshot.summary.get("total-records")) or 0)


def _pending(paths: Iterable[str], record: published.Shards) -> dict[Shard, list[str]]:
    """The part files among ``paths`` of the shards ``record`` does not hold, by shard."""
    return {shard: files for shard, files in _by_shard(paths).items() if not published.holds(record, *shard)}


def _by_shard(paths: Iterable[str]) -> dict[Shard, list[str]]:
    shards: dict[Shard, list[str]] = {}
    for path in paths:
        part = layout.parse_part_file(path)
        if part is not None:
            shards.setdefault((part.run_id, part.shard_id), []).append(path)
    return shards
