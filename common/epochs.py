"""Which commit markers count: the one rule every reader of an output applies (``jobs.records.shard_markers`` for
the job, ``common.committed_files`` for ``export``, ``report`` and ``track``).

A shard's marker and part files carry the epoch of the output's lease they were written under
(``schemas.layout``), and epochs only grow per output (``jobs.records.lease``). A writer checks its lease right
before it writes a marker, but an object store cannot make that check and the write one step: a writer that
checked, then stalled, can land its marker after another run took the output over. So each holder writes an
epoch record (``_runs/_epochs/<epoch>.json``, ``schemas.manifest.EpochRecord``) once it holds the lease and before
it reads, writes or deletes any marker or part file, naming the markers of the epochs since the previous record
that count then. The rule:

- a marker of epoch ``e`` counts iff no record of an epoch after ``e`` exists, or the first record after ``e``
  names it. A marker a stale writer lands after the holder's record never counts, whatever its files;
- a marker from before epochs (epoch 0) counts as it always did;
- of the markers of one shard that count, the one of the highest epoch is the shard's commit: only the part
  files of that run, shard and epoch hold the shard's rows.

A reader lists the records once (``EpochRecords``) and reads only those a marker needs: the first after its epoch.
"""

from __future__ import annotations

import bisect
import posixpath
import threading
from collections.abc import Collection, Iterable

from common.storage import Location, read_files, retrying
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
        judged = {marker: self._judge(marker.epoch) for marker in markers}
        self._load({judge for judge in judged.values() if judge is not None})
        commits: dict[tuple[str, str], ShardFile] = {}
        for marker, judge in judged.items():
            if judge is None or layout.marker(*marker) in self._named[judge]:
                shard = (marker.run_id, marker.shard_id)
                if shard not in commits or commits[shard].epoch < marker.epoch:
                    commits[shard] = marker
        return commits

    def _judge(self, epoch: int) -> int | None:
        """The epoch of the record that decides whether a marker of ``epoch`` counts, the first after it; None
        where none does (there is no later record, or the marker is from before epochs)."""
        later = bisect.bisect_right(self.epochs, epoch)
        return self.epochs[later] if epoch and later < len(self.epochs) else None

    def _load(self, epochs: Collection[int]) -> None:
        """Read the records of ``epochs`` not read yet, all in one request batch."""
        with self._reading:
            paths = {self.out.child(layout.epoch_record(e)).path: e for e in epochs if e not in self._read}
            for path, data in read_files(self.out.fs, list(paths)).items():
                record = EpochRecord.model_validate_json(data)
                self._read[paths[path]] = record
                self._named[paths[path]] = frozenset(record.counted)
