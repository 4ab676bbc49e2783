"""The run's plan: every work item (an image, or a frame range of a video), its shard and its output
partition, saved with the run for resume.

A resumed run reads the plan it saved rather than listing again, so a folder that changed meanwhile cannot
shift inputs between shards; the change is reported instead (``Plan.drift``). Items are numbered (``item``) so
the driver can tell when every item of a shard has delivered all of its rows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from common.parquet import parquet_bytes
from common.storage import Location
from jobs.planning.listing import Listing
from jobs.planning.segments import Segment
from jobs.planning.sharding import shard_ids
from schemas import layout
from schemas.tables import PLAN_SCHEMA


@dataclass(frozen=True)
class Plan:
    table: pa.Table

    @classmethod
    def from_listing(
        cls, listing: Listing, shard_size: int, run_date: str, videos: dict[str, list[Segment]] | None = None
    ) -> "Plan":
        """One item per image and per video segment (``videos``: the segments of each listed video)."""
        videos = videos or {}
        columns: dict[str, list] = {name: [] for name in PLAN_SCHEMA.names if name not in ("item", "shard_id")}
        names = ("uri", "size", "version", "source", "kind")
        for uri, size, version, source, kind in zip(*(listing.table.column(c).to_pylist() for c in names)):
            for segment in videos.get(uri, [Segment(0, None, 1, None)]) if kind == "video" else [None]:
                info = segment.info if segment else None
                columns["source_uri"].append(uri)
                columns["size"].append(size)
                columns["version"].append(version)
                columns["kind"].append(kind)
                columns["frame_start"].append(segment.start if segment else 0)
                columns["frame_stop"].append(segment.stop if segment else None)
                columns["fps"].append(info.fps if info else None)
                columns["video_frames"].append(info.frames if info and info.exact_count else None)
                columns["expected_frames"].append(segment.expected if segment else 1)
                columns["partition"].append(layout.partition(run_date, source))
        items = len(columns["source_uri"])
        columns["item"] = list(range(items))
        columns["shard_id"] = shard_ids(columns["expected_frames"], shard_size)
        return cls(
            pa.table(
                {name: pa.array(columns[name], PLAN_SCHEMA.field(name).type) for name in PLAN_SCHEMA.names},
                schema=PLAN_SCHEMA,
            )
        )

    @classmethod
    def load(cls, where: Location) -> "Plan":
        return cls(pq.read_table(io.BytesIO(where.read_bytes())).cast(PLAN_SCHEMA))

    def save(self, where: Location) -> None:
        where.write_bytes_atomic(parquet_bytes(self.table))

    @property
    def shard_sizes(self) -> dict[str, int]:
        """Items per shard: a shard is complete when each of its items has delivered all of its rows."""
        counts = self.table.group_by("shard_id").aggregate([("item", "count")])
        return dict(zip(counts.column("shard_id").to_pylist(), counts.column("item_count").to_pylist()))

    @property
    def expected_frames(self) -> int:
        return pc.sum(self.table.column("expected_frames")).as_py() or 0

    @property
    def partitions(self) -> set[str]:
        """The output partitions the plan's rows go to: the only folders its run's part files are in."""
        return set(pc.unique(self.table.column("partition")).to_pylist())

    @property
    def inputs(self) -> int:
        return len(pc.unique(self.table.column("source_uri")))

    def pending(self, committed: set[str]) -> pa.Table:
        """Inputs of shards not yet committed."""
        if not committed:
            return self.table
        mask = pc.invert(pc.is_in(self.table.column("shard_id"), value_set=pa.array(sorted(committed), pa.string())))
        return self.table.filter(mask)

    def drift(self, listing: Listing) -> tuple[int, int]:
        """(inputs listed now but not planned, planned inputs no longer listed)."""
        planned = set(pc.unique(self.table.column("source_uri")).to_pylist())
        listed = set(listing.table.column("uri").to_pylist())
        return len(listed - planned), len(planned - listed)
