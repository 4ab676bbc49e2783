"""Publish a job output's committed files to Iceberg tables: their own part files, added in place.

An output has two sets of tables: ``detect``'s (``frames``, ``detections``: ``tables.shard_tables``) and
``track``'s (``tracks``, ``track_summaries``: ``tables.track_tables``). Each set knows its units (shards, videos'
tracks), which of them are committed and current, and what each of its tables holds; this module makes the tables,
asks each set for its change to each table, and commits them in the set's order, one transaction per table
(``tables.changes``). Every table then holds exactly the rows its reader (``export``) reads, and publishing again
adds nothing. The hive files stay the output's truth and are never changed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from common.committed_files import require_output
from common.storage import Location
from tables.catalog import table_for
from tables.changes import Change, commit
from tables.shard_tables import ShardTables
from tables.track_tables import TrackTables


class TableSet(Protocol):
    """Tables published together, from one kind of committed unit."""

    names: tuple[str, ...]
    """The tables, in the order they commit."""
    unit: str
    """What a unit is, in the plural, for the console (``shards``)."""
    everything: str
    """What the tables hold once nothing is left to add, for the console."""

    def found(self, out: Location) -> bool:
        """Whether ``out`` has anything of these tables (else ``iceberg`` does not make them)."""
        ...

    def changes(self, out: Location, tables: dict[str, Table]) -> dict[str, Change]:
        """What a publish adds to (and removes from) each of ``tables``."""
        ...

    def held(self, table: Table, run_id: str) -> int:
        """How many of run ``run_id``'s units ``table`` (the set's last to commit) holds."""
        ...


SETS: tuple[TableSet, ...] = (ShardTables(), TrackTables())


@dataclass
class Publication:
    """What one publish did, per table."""

    namespace: str
    sets: list[TableSet] = field(default_factory=list)
    """The sets published, in order."""
    units: dict[str, int] = field(default_factory=dict)
    """Table -> units (shards, videos) added."""
    files: dict[str, int] = field(default_factory=dict)
    """Table -> part files added."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Table -> superseded rows removed."""

    def line(self) -> str:
        """One line for the console."""
        told = []
        for table_set in self.sets:
            shown = [(name, f"{self.namespace}.{name}") for name in reversed(table_set.names)]
            if not any(self.units[name] for name in table_set.names):
                told.append(f"{' and '.join(full for _, full in shown)} already hold {table_set.everything}")
                continue
            told += [
                f"{full}: {self.units[name]} {table_set.unit} added ({self.files[name]} files), superseded rows "
                f"deleted: {self.deleted[name]}"
                for name, full in shown
            ]
        return "iceberg: " + "; ".join(told)


def publish(out: Location, catalog: Catalog, namespace: str, tables: Collection[str] | None = None) -> Publication:
    """Add the committed units of ``out`` that the tables of ``namespace`` do not hold, making the tables when
    missing. ``tables``: the names of the tables to publish, each with the rest of its set; None for every set the
    output has (``frames`` and ``detections`` always, ``tracks`` and ``track_summaries`` once it has tracks).
    ``UsageError`` for an output that is not a job's."""
    require_output(out)  # before the tables are made
    result = Publication(namespace)
    for table_set in _chosen(out, tables):
        opened = {name: table_for(catalog, namespace, name) for name in table_set.names}
        changes = table_set.changes(out, opened)
        result.sets.append(table_set)
        for name in table_set.names:
            change = changes[name]
            result.units[name], result.files[name] = change.units, len(change.files)
            result.deleted[name] = commit(opened[name], out, change) if change.units else 0
    return result


def held(catalog: Catalog, namespace: str, tables: Collection[str], run_id: str) -> int:
    """How many of run ``run_id``'s units the set of ``tables`` holds (its last table to commit: what a reader of
    both tables sees whole)."""
    [table_set] = [s for s in SETS if set(s.names) & set(tables)]
    return table_set.held(catalog.load_table(f"{namespace}.{table_set.names[-1]}"), run_id)


def _chosen(out: Location, tables: Collection[str] | None) -> list[TableSet]:
    if tables is None:
        return [table_set for table_set in SETS if table_set.found(out)]
    return [table_set for table_set in SETS if set(table_set.names) & set(tables)]
