"""Expire the tables' old snapshots: each publish adds one per table, and every commit rewrites a metadata file
that lists them all, so without expiry the metadata a commit writes grows with the history.

pyiceberg's own expiry (``table.maintenance.expire_snapshots()``) removes snapshots from the table's metadata and
nothing else: the manifest lists, the manifests, the older metadata files and the data files that only expired
snapshots still reference (those a copy-on-write delete rewrote or dropped) stay where they are. Removing them,
and compacting small files (``rewrite_data_files``), needs an engine that does (Spark, Trino). The current
snapshot is always kept, so the tables read the same rows after expiry; time travel to an expired one is gone.
The shards a table holds are in its properties (``tables.published``), never in snapshot summaries, so expiry
never makes a publish add a shard twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyiceberg.catalog import Catalog

from tables.publish import SETS


@dataclass
class Expiry:
    """What one expiry did, per table."""

    namespace: str
    days: float
    expired: dict[str, int] = field(default_factory=dict)
    """Table -> snapshots expired."""
    kept: dict[str, int] = field(default_factory=dict)
    """Table -> snapshots left, the current one among them."""

    def line(self) -> str:
        """One line for the console."""
        told = (
            f"{self.namespace}.{table}: {expired} expired, {self.kept[table]} kept"
            for table, expired in self.expired.items()
        )
        return f"iceberg: snapshots older than {self.days:g} days: " + "; ".join(told)


def expire(catalog: Catalog, namespace: str, days: float, now: datetime) -> Expiry:
    """Expire the snapshots of ``namespace``'s tables (those of them that exist) made more than ``days`` before
    ``now``, but the heads of branches and tags (``main``'s is the current snapshot), which pyiceberg refuses to
    expire; one commit per table that has any to expire."""
    cutoff_ms = (now - timedelta(days=days)).timestamp() * 1000
    result = Expiry(namespace, days)
    for name in (name for table_set in SETS for name in reversed(table_set.names)):
        if not catalog.table_exists(f"{namespace}.{name}"):
            continue
        table = catalog.load_table(f"{namespace}.{name}")
        heads = {ref.snapshot_id for ref in table.metadata.refs.values()}  # main's: the current snapshot
        old = [s.snapshot_id for s in table.snapshots() if s.timestamp_ms < cutoff_ms and s.snapshot_id not in heads]
        if old:
            table.maintenance.expire_snapshots().by_ids(old).commit()
            table.refresh()
        result.expired[name] = len(old)
        result.kept[name] = len(table.snapshots())
    return result
