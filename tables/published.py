"""Which committed shards a table holds: a property of the table, changed in the commit that adds the shards.

The table's files cannot tell it (a delete rewrites a file under a new name, or drops it once every row is
superseded) and snapshot summaries go when snapshots are expired, so each table keeps its own record in the
``yolonas-batch.shards`` property: run id -> shard numbers, as ranges (``0-41,43``), a few bytes per run however
many shards it has. Each table has its own, because the tables commit one after the other and a publish stopped
between the two must add the second table's shards once, not the first's again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

PROPERTY = "yolonas-batch.shards"
"""The table property holding the record."""

Shards = dict[str, set[int]]
"""Run id -> its shards' numbers (shard ids are zero-padded numbers)."""


def read(properties: Mapping[str, str]) -> Shards:
    """The record in a table's properties; empty for a table that holds none yet."""
    runs = json.loads(properties.get(PROPERTY, "{}"))
    return {run: set(_numbers(ranges)) for run, ranges in runs.items()}


def written(record: Shards) -> str:
    """``record`` as the property's value: runs sorted, each run's shard numbers as ranges."""
    return json.dumps({run: _ranges(record[run]) for run in sorted(record)}, separators=(",", ":"))


def merged(record: Shards, added: Iterable[tuple[str, str]]) -> Shards:
    """``record`` with the (run id, shard id) pairs of ``added``."""
    result = {run: set(shards) for run, shards in record.items()}
    for run, shard in added:
        result.setdefault(run, set()).add(int(shard))
    return result


def holds(record: Shards, run_id: str, shard_id: str) -> bool:
    return int(shard_id) in record.get(run_id, ())


def _ranges(numbers: set[int]) -> str:
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _numbers(ranges: str) -> Iterable[int]:
    for span in filter(None, ranges.split(",")):
        first, _, last = span.partition("-")
        yield from range(int(first), int(last or first) + 1)
