"""The tables of ``detect``'s output, ``frames`` and ``detections``: the committed shards' part files, one current row
per frame, the rows ``export`` reads by default.

A publish adds every committed shard a table does not hold yet (``tables.published``, the shards each table
records), ``detections`` first, then ``frames``, so a frame a reader finds in ``frames`` has its boxes in
``detections`` already. The rows the added shards supersede (``tables.superseded``: of each frame only the newest
run's row stays) are deleted in the same transaction. Only committed shards count (``common.committed_files``, the
rule every reader applies).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyiceberg.table import Table

from common.committed_files import committed_files
from common.storage import Location
from schemas import layout
from tables import published
from tables.changes import Change
from tables.superseded import superseded

ADDED_SHARDS = "yolonas-batch.added-shards"
"""The snapshot summary property naming the shards a publish's append added (``tables.published``' form)."""

Shard = tuple[str, str]
"""(run id, shard id)."""


class ShardTables:
    """``frames`` and ``detections``, which every job output has."""

    names: tuple[str, ...] = (layout.DETECTIONS, layout.FRAMES)
    """The order the tables commit in: boxes before the frames that point readers at them."""
    unit = "shards"
    everything = "every committed shard"

    def found(self, out: Location) -> bool:
        """Every job output has them (tables made empty until a shard commits)."""
        return True

    def changes(self, out: Location, tables: dict[str, Table]) -> dict[str, Change]:
        """Of each table, the committed shards it does not hold, with the rows they supersede."""
        files = committed_files(out)
        records = {name: published.read(tables[name].properties) for name in self.names}
        pending = {name: _pending(files.of(name), records[name]) for name in self.names}
        frames_by_shard = _by_shard(files.of(layout.FRAMES))
        adding = sorted(set(pending[layout.FRAMES]) | set(pending[layout.DETECTIONS]))
        stale = superseded(
            tables[layout.FRAMES], out, [path for shard in adding for path in frames_by_shard.get(shard, [])]
        )
        return {
            name: Change(
                units=len(shards),
                files=[path for paths in shards.values() for path in paths],
                summary={ADDED_SHARDS: published.written(published.merged({}, shards))},
                record={published.PROPERTY: published.written(published.merged(records[name], shards))},
                stale=stale,
            )
            for name, shards in pending.items()
        }

    def held(self, table: Table, run_id: str) -> int:
        """The shards of run ``run_id`` that ``table`` holds."""
        return len(published.read(table.properties).get(run_id, ()))


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
