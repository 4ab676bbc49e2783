"""A real SQLite Iceberg catalog whose appends to chosen tables fail, as a commit another writer won (or a catalog
that went down between two commits) fails: for what a publish stopped between its two commits leaves, without
killing a process there."""

from __future__ import annotations

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.update import AddSnapshotUpdate, TableRequirement, TableUpdate

FAILING: set[str] = set()
"""The tables (``frames``, ``detections``) whose appends fail now; a test empties it to let them through."""


class FailingCatalog(SqlCatalog):
    """``SqlCatalog`` but for commits adding a snapshot to a table named in ``FAILING``, which raise as a lost
    commit does: tables are still made, and other tables' commits land."""

    def commit_table(self, table: Table, requirements: tuple[TableRequirement, ...], updates: tuple[TableUpdate, ...]):
        if table.name()[-1] in FAILING and any(isinstance(u, AddSnapshotUpdate) for u in updates):
            raise CommitFailedException(f"injected: the commit to {table.name()[-1]} failed")
        return super().commit_table(table, requirements, updates)
