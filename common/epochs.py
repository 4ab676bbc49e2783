"""Which commit markers count: the one rule every reader of an output applies (``jobs.records.shard_markers`` for
the job, ``common.committed_files`` for ``export``, ``report`` and ``track``).

A shard's marker and part files carry the epoch of the output's lease they were written under
(``schemas.layout``), and epochs only grow per output (``jobs.records.lease``). A writer checks its lease right
before it writes a marker, but an object store cannot make that check and the write one step: a writer that
checked, then stalled, can land its marker after another run took the output over. So each holder writes an
epoch record (``_runs/_epochs/<epoch>.json``, ``schemas.manifest.EpochRecord``) once it holds the lease and before
it reads, writes or deletes any marker or part file, naming the markers of the epochs since the previous record
that count then, and that previous record (``follows``). The records so linked from the latest one back are the
chain; a record off it (written late by a holder that had lost the output) is ignored. The rule:

- a marker of epoch ``e`` counts iff no record of the chain comes after ``e``, or the first that does names it.
  A marker a stale writer lands after the holder's record never counts, whatever its files;
- a marker from before epochs (epoch 0) counts as it always did;
- of the markers of one shard that count, the one of the highest epoch is the shard's commit: only the part
  files of that run, shard and epoch hold the shard's rows.

A reader lists the records once (``EpochRecords``) and reads, in one batch, only the records after the oldest
epoch among the markers it judges: none at all for a holder's own markers.
"""

from __future__ import annotations

import bisect
import posixpath
import threading
from collections.abc import Iterable

from common.retries import retrying
from common.storage import Location, read_files
from schemas import layout
from schemas.layout import ShardFile
from schemas.manifest import EpochRecord


class EpochRecords:
    """The epoch records of ``out`` as one listing found them (``epochs``); each is read when first needed, then
    kept (thread-safe: readers of many runs share one)."""

    def __init__(self, out: Location, epochs: Iterable[int]) -> None:
        self.out = out
        self.epochs = sorted(set(epochs))
        self._read: dict[int, EpochRecord] = {}
        self._named: dict[int, frozenset[str]] = {}
        self._reading = threading.Lock()

    @classmethod
    def listed(cls, out: Location) -> EpochRecords:
        """The records of ``out``, from one fresh listing of ``_runs/_epochs``."""
        runs = out.child(layout.RUNS).path
        names = (posixpath.relpath(path, runs) for path in retrying(out.child(layout.EPOCHS).files))
        return cls(out, [epoch for epoch in map(layout.parse_epoch_record, names) if epoch is not None])

    @property
    def latest(self) -> int:
        """The highest epoch with a record; 0 where there is none."""
        return self.epochs[-1] if self.epochs else 0

    def record(self, epoch: int) -> EpochRecord:
        self._load([epoch])
        return self._read[epoch]

    def counted(self, markers: Iterable[ShardFile]) -> dict[tuple[str, str], ShardFile]:
        """(run id, shard id) -> the marker that is the shard's commit, of ``markers`` (those present), by the rule
        above; shards none of whose markers counts are left out."""
        markers = list(markers)
        chain = self._chain(min((m.epoch for m in markers if m.epoch), default=self.latest))
        commits: dict[tuple[str, str], ShardFile] = {}
        for marker in markers:
            later = bisect.bisect_right(chain, marker.epoch)
            if marker.epoch and later < len(chain) and layout.marker(*marker) not in self._named[chain[later]]:
                continue
            shard = (marker.run_id, marker.shard_id)
            if shard not in commits or commits[shard].epoch < marker.epoch:
                commits[shard] = marker
        return commits

    def _chain(self, after: int) -> list[int]:
        """The epochs of the chain's records after ``after``, ascending: the records after it read in one batch,
        then followed back from the latest."""
        self._load([epoch for epoch in self.epochs if epoch > after])
        chain: list[int] = []
        epoch = self.latest
        while epoch > after and epoch in self._read:
            chain.append(epoch)
            epoch = min(self._read[epoch].follows, epoch - 1)  # always back: a damaged record cannot loop
        return chain[::-1]

    def _load(self, epochs: Iterable[int]) -> None:
        """Read the records of ``epochs`` not read yet, all in one batch of requests."""
        with self._reading:
            paths = {self.out.child(layout.epoch_record(e)).path: e for e in epochs if e not in self._read}
            for path, data in read_files(self.out.fs, list(paths)).items():
                record = EpochRecord.model_validate_json(data)
                self._read[paths[path]] = record
                self._named[paths[path]] = frozenset(record.counted)
