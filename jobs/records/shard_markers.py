"""The commit markers of one run's shards and the table files they vouch for: which shards of a run are done, what a
lease holder records of them when it takes the output, and how a run's files are brought in line with them.

A shard is done once a marker of it counts (``_runs/<run_id>/shards/<shard>-e<epoch>.json``, written last by
``jobs.commit.committer``; which count is ``common.epochs``' rule over the output's epoch records). Planning
(resume, ``--incremental``), the run store (``--overwrite``), the committer and the runner all go by this module.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Iterable
from datetime import datetime, timezone

from common.epochs import EpochRecords
from common.storage import Location, read_files
from jobs.records.fence import Fence
from jobs.records.lease import LeaseLost
from schemas import layout
from schemas.layout import ShardFile
from schemas.manifest import EpochRecord, ShardCommit


class ShardMarkers:
    """The markers of run ``run_id`` under ``out``. ``records``: the output's epoch records as a caller reading many
    runs listed them once; else they are listed afresh at each question, so that a takeover since is seen."""

    def __init__(self, out: Location, run_id: str, records: EpochRecords | None = None) -> None:
        self.out = out
        self.run_id = run_id
        self.records = records

    def marker(self, shard_id: str, epoch: int) -> Location:
        return self.out.child(layout.marker(self.run_id, shard_id, epoch))

    def counted(self) -> dict[str, ShardFile]:
        """Shard id -> the marker that is its commit, of the markers present that count: one listing of the run's
        markers, one of the epoch records (unless given), and reads of only the records needed."""
        return self._counted(self._listed())

    def committed(self) -> dict[str, ShardCommit]:
        """The commits of the shards done, read (what the run's manifest counts)."""
        return self._read(self.counted())

    def committed_ids(self) -> set[str]:
        """The shards done, no marker read."""
        return set(self.counted())

    def reconcile(self, epoch: int, partitions: Collection[str]) -> tuple[dict[str, ShardCommit], int]:
        """Bring the run's markers and part files in line with what counts, as the lease's holder at ``epoch``:
        drop the counting markers that miss a file (their shards are done again), then remove the run's markers
        and part files that no counting marker names (a killed attempt's uncommitted shards, what a writer that
        had lost the output landed late) and its partial ``.tmp`` files. Only names of epochs up to ``epoch`` are
        touched: a holder that lost the output never removes what a later one writes. ``partitions``: the run's
        (its plan's), the only folders its part files are in. Returns the commits that count and how many files
        were removed. Markers go before the part files, so that a cut short leaves no marker naming a file gone."""
        listing = self._listing()
        counted = self._counted(_parsed(self.out, listing))
        commits = self._read(counted)
        folders = {posixpath.join(table, partition) for table in layout.TABLES for partition in partitions}
        parts = _files_in(self.out, folders | _folders_of(commits.values()))
        kept = {shard: c for shard, c in commits.items() if counted[shard].epoch > epoch or _backed(c, parts)}
        named = {counted[shard] for shard in kept}
        doomed = [path for path in listing if _leftover(_marker_of(self.out, path), path, named, epoch)]
        for name, path in parts.items():
            part = layout.parse_part_file(layout.unfinished(name) or name)
            if part is not None and part.run_id == self.run_id and _leftover(part, path, named, epoch):
                doomed.append(path)
        for path in doomed:
            self.out.fs.rm_file(path)
        return kept, len(doomed)

    def backed_since(self, first_epoch: int, before_epoch: int) -> list[str]:
        """The run's markers of epochs ``first_epoch`` to ``before_epoch`` (not included) present with every file
        they name, as paths relative to the output."""
        listed = sorted(_parsed(self.out, self._listing()), key=lambda marker: marker.epoch)
        since = {m.shard_id: m for m in listed if first_epoch <= m.epoch < before_epoch}
        commits = self._read(since)
        parts = _files_in(self.out, _folders_of(commits.values()))
        return sorted(layout.marker(*since[shard]) for shard, commit in commits.items() if _backed(commit, parts))

    def _counted(self, listed: Iterable[ShardFile]) -> dict[str, ShardFile]:
        records = self.records or EpochRecords.listed(self.out)
        return {shard: marker for (_, shard), marker in records.counted(listed).items()}

    def _read(self, markers: dict[str, ShardFile]) -> dict[str, ShardCommit]:
        paths = {shard: self.out.child(layout.marker(*marker)).path for shard, marker in markers.items()}
        data = read_files(self.out.fs, list(paths.values()))
        return {shard: ShardCommit.model_validate_json(data[path]) for shard, path in paths.items()}

    def _listing(self) -> list[str]:
        """Every file in the run's markers folder (partial ``.tmp`` files too), from a fresh listing."""
        return self.out.child(layout.markers(self.run_id)).files()

    def _listed(self) -> list[ShardFile]:
        return _parsed(self.out, self._listing())


def record_epoch(fence: Fence, records: EpochRecords) -> EpochRecord:
    """Write the epoch record of the lease's holder ``fence`` names, once it holds the lease and before it reads,
    writes or deletes any marker or part file (``common.epochs``); ``records``: the output's, listed since the
    lease was taken.

    The markers of the epochs since the previous record can only be of that record's run: a holder records its
    run before it writes anything, and one that crashed before recording wrote nothing. So that run's markers are
    listed, and those present with every file they name recorded. Raises ``LeaseLost`` where the lease is no
    longer this holder's, or a record of its epoch or a later one exists (another run has taken the output)."""
    if records.latest >= fence.epoch:
        raise LeaseLost(f"the output {fence.out.uri} has an epoch record of epoch {records.latest} already")
    counted = []
    if records.latest:
        previous = ShardMarkers(fence.out, records.record(records.latest).run_id)
        counted = previous.backed_since(records.latest, fence.epoch)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = EpochRecord(
        epoch=fence.epoch, follows=records.latest, run_id=fence.run_id, written_at=now, counted=counted
    )
    fence.check()
    where = fence.out.child(layout.epoch_record(fence.epoch))
    where.write_bytes_atomic(record.model_dump_json(indent=1).encode(), deadline=fence.deadline)
    return record


def table_files(out: Location) -> list[str]:
    """Every file under the tables' folders of ``out``, from a fresh listing."""
    return [path for table in layout.TABLES for path in out.child(table).files()]


def _marker_of(out: Location, path: str) -> ShardFile | None:
    """What a marker's path (or that of a partial ``.tmp`` file of one) says."""
    return layout.parse_marker(posixpath.relpath(layout.unfinished(path) or path, out.child(layout.RUNS).path))


def _parsed(out: Location, paths: Iterable[str]) -> list[ShardFile]:
    """The markers among ``paths`` (partial ``.tmp`` files are none)."""
    runs = out.child(layout.RUNS).path
    return [marker for path in paths if (marker := layout.parse_marker(posixpath.relpath(path, runs))) is not None]


def _leftover(name: ShardFile | None, path: str, named: set[ShardFile], epoch: int) -> bool:
    """Whether a file of the run named ``name`` is for a holder at ``epoch`` to remove: a partial file, or one no
    counting marker names, of an epoch up to ``epoch``."""
    return name is not None and name.epoch <= epoch and (layout.unfinished(path) is not None or name not in named)


def _files_in(out: Location, folders: Iterable[str]) -> dict[str, str]:
    """Every file in ``folders`` (relative to ``out``), relative -> path, from one fresh listing each."""
    return {posixpath.relpath(path, out.path): path for folder in folders for path in out.child(folder).files()}


def _folders_of(commits: Iterable[ShardCommit]) -> set[str]:
    return {posixpath.dirname(name) for commit in commits for name in commit.files}


def _backed(commit: ShardCommit, files: Collection[str]) -> bool:
    """Whether every file ``commit`` names is among ``files`` (relative to the output)."""
    return all(name in files for name in commit.files)
