"""The run's plan: every input, its shard and its output partition, saved with the run for resume.

A resumed run reads the plan it saved rather than listing again, so a folder that changed meanwhile cannot
shift inputs between shards; the change is reported instead (``Plan.drift``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.listing import Listing
from jobs.sharding import shard_ids
from jobs.storage import Location

PLAN_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("shard_id", pa.string(), nullable=False),
        pa.field("partition", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Plan:
    table: pa.Table

    @classmethod
    def from_listing(cls, listing: Listing, shard_size: int, run_date: str) -> "Plan":
        sources = listing.table.column("source").to_pylist()
        table = pa.table(
            {
                "source_uri": listing.table.column("uri"),
                "size": listing.table.column("size"),
                "shard_id": pa.array(shard_ids(len(listing), shard_size), pa.string()),
                "partition": pa.array([f"run_date={run_date}/source={s}" for s in sources], pa.string()),
            },
            schema=PLAN_SCHEMA,
        )
        return cls(table)

    @classmethod
    def load(cls, where: Location) -> "Plan":
        return cls(pq.read_table(io.BytesIO(where.read_bytes())).cast(PLAN_SCHEMA))

    def save(self, where: Location) -> None:
        sink = io.BytesIO()
        pq.write_table(self.table, sink, compression="zstd")
        where.write_bytes_atomic(sink.getvalue())

    @property
    def shard_sizes(self) -> dict[str, int]:
        counts = self.table.group_by("shard_id").aggregate([("source_uri", "count")])
        return dict(zip(counts.column("shard_id").to_pylist(), counts.column("source_uri_count").to_pylist()))

    def pending(self, committed: set[str]) -> pa.Table:
        """Inputs of shards not yet committed."""
        if not committed:
            return self.table
        mask = pc.invert(pc.is_in(self.table.column("shard_id"), value_set=pa.array(sorted(committed), pa.string())))
        return self.table.filter(mask)

    def drift(self, listing: Listing) -> tuple[int, int]:
        """(inputs listed now but not planned, planned inputs no longer listed)."""
        planned = set(self.table.column("source_uri").to_pylist())
        listed = set(listing.table.column("uri").to_pylist())
        return len(listed - planned), len(planned - listed)
