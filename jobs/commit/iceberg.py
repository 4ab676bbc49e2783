"""``detect --iceberg`` and ``track --iceberg``: the run's committed shards (videos' tracks) published to the
Iceberg tables while it goes, by the driver.

Publishing is ``tables.publish.publish``, which adds exactly the committed units the tables do not hold yet: so
whatever a publish misses (a crash between a shard's marker and its Iceberg commit, a catalog that was down, a
commit another writer won) the next one adds, once. The run publishes at its start (what an earlier, killed
attempt committed but never published), in batches as its shards commit, and at its end, after the last
reconcile. Only the holder of the output's lease publishes: its fence is checked before each publish, as before
each marker. A publish that fails is one line in the log and is tried again at the next batch or the end: the
tables are a view of the output, so they never fail the run, and the Parquet output is never touched.

The publish runs in the driver, between receipts: one transaction per table, mostly reading the tables' metadata
and the committed markers, while Ray Data keeps streaming. pyiceberg is imported only by runs that publish.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TextIO

from common.storage import Location
from jobs.records.fence import Fence
from schemas import layout
from schemas.config import JobConfig, redacted_uri
from schemas.manifest import IcebergState
from schemas.track_config import TrackConfig

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

EVERY_SHARDS = 20
"""Committed shards after which the run publishes (or ``EVERY_S``, whichever comes first). Each publish is a
snapshot and a manifest file per table, and reads every committed marker: publishing each shard on its own would
give a large run thousands of snapshots and make its publishing cost grow with the square of its shards."""
EVERY_S = 30.0
"""Seconds after which a shard's commit publishes whatever is pending: how far the tables lag the markers while
shards commit. A shard committed soon after a publish waits for the next commit past this, or the run's end."""


@dataclass(frozen=True)
class IcebergTarget:
    """An opened catalog and the namespace of the run's tables."""

    catalog: Catalog
    namespace: str


def open_target(config: JobConfig | TrackConfig, out: Location) -> IcebergTarget | None:
    """The catalog ``--iceberg`` names, opened, and the namespace (``--iceberg-namespace``, else made from OUT's
    name as ``yolonas-batch iceberg`` makes it); None without ``--iceberg``, importing nothing of pyiceberg.
    ``UsageError`` in one line, before any work, for a catalog that cannot be opened (``tables.connect``: ``local``
    in an output on an object store, among others) or a namespace that is not an identifier."""
    if config.iceberg is None:
        return None
    from tables.catalog import check_namespace, namespace_of
    from tables.connect import connect

    given = config.iceberg_namespace
    namespace = check_namespace(given, "--iceberg-namespace") if given else namespace_of(out.path)
    logging.getLogger("pyiceberg").setLevel(logging.ERROR)  # its notes on the files it rewrites are not the user's
    return IcebergTarget(connect(config.iceberg, out, config.storage_options, flag="--iceberg"), namespace)


class IcebergPublisher:
    """Publishes ``out``'s committed units to ``target``'s tables for run ``run_id`` under ``fence``; does nothing
    without a target. ``every_shards`` (default ``EVERY_SHARDS``), ``every_s`` (``EVERY_S``) and ``clock`` pace the
    batches; ``tables``: ``detect``'s (``frames`` and ``detections``, the default) or ``track``'s."""

    def __init__(
        self,
        target: IcebergTarget | None,
        out: Location,
        run_id: str,
        fence: Fence | None,
        stream: TextIO,
        every_shards: int | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        tables: tuple[str, ...] = layout.TABLES,
    ) -> None:
        self.target = target
        self.out = out
        self.run_id = run_id
        self.fence = fence
        self.stream = stream
        self.every_shards = every_shards or EVERY_SHARDS
        self.every_s = every_s or EVERY_S
        self.clock = clock
        self.tables = tables
        self.pending = 0
        """Units committed since the last publish."""
        self.published_at = clock()
        self.state = IcebergState(namespace=target.namespace) if target is not None else None

    def committed(self) -> None:
        """A unit of the run committed (its marker written): publish when the batch is full or old enough."""
        if self.target is None:
            return
        self.pending += 1
        if self.pending >= self.every_shards or self.clock() - self.published_at >= self.every_s:
            self.publish()

    def publish(self) -> IcebergState | None:
        """Publish every committed shard the tables miss, now; the state after it (None without a target). A
        failure is told in one line and kept in the state, never raised."""
        if self.target is None or self.state is None:
            return None
        self.pending, self.published_at = 0, self.clock()
        from tables.publish import publish

        try:
            if self.fence is not None:
                self.fence.check()  # a run that lost the output publishes nothing more of it
            publish(self.out, self.target.catalog, self.target.namespace, self.tables)
            self.state = self.state.model_copy(update={"published_shards": self._held(), "error": None})
        except Exception as exc:  # the tables are a view: the next publish adds what this one missed
            error = redacted_uri(_first_line(exc))
            self.state = self.state.model_copy(update={"error": error})
            print(f"iceberg: publish failed, tried again later: {error}", file=self.stream, flush=True)
        return self.state

    def _held(self) -> int:
        """The run's units the tables hold (``tables.publish.held``)."""
        from tables.publish import held

        assert self.target is not None
        return held(self.target.catalog, self.target.namespace, self.tables, self.run_id)


def _first_line(error: BaseException) -> str:
    from tables.catalog import first_line

    return f"{type(error).__name__}: {first_line(error)}"
