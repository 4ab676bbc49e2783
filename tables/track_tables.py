"""The tables of ``track``'s output, ``tracks`` and ``track_summaries``: of each video, the tracks of its newest
committed version, exactly what ``export`` of tracks reads.

``track`` writes each version of a video's tracks as one file per table, named by the version's key, and commits it
with a marker; which version is current is ``common.committed_tracks``' rule (the marker committed last), the one
``exports.tracks_reader`` applies. A table records the keys of the versions it holds (``yolonas-batch.track-keys``,
in the commit that adds them). A publish adds the current version of each video whose key a table does not hold,
and in the same snapshot (an overwrite) removes the files of that video's version the table held before: whole
files, since each holds one version of one video, so none is read or rewritten. ``tracks`` commits first, then
``track_summaries``, so a track a reader finds in the summaries has its boxes in ``tracks`` already.
"""

from __future__ import annotations

from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from common.committed_tracks import newest_track_commits, track_markers
from common.storage import Location
from schemas import layout
from schemas.manifest import TrackCommit
from tables.changes import Change

PROPERTY = "yolonas-batch.track-keys"
"""The table property naming the versions (track keys) the table holds, one per video, sorted, comma-separated."""
ADDED_KEYS = "yolonas-batch.added-track-keys"
"""The snapshot summary property naming the versions a publish's append added (``PROPERTY``'s form)."""


class TrackTables:
    """``tracks`` and ``track_summaries``, which an output has once ``track`` committed a video."""

    names: tuple[str, ...] = (layout.TRACKS, layout.TRACK_SUMMARIES)
    """The order the tables commit in: boxes before the summaries that point readers at them."""
    unit = "videos"
    everything = "the newest tracks of every tracked video"

    def found(self, out: Location) -> bool:
        """Whether ``out`` has committed tracks."""
        return bool(track_markers(out))

    def changes(self, out: Location, tables: dict[str, Table]) -> dict[str, Change]:
        """Of each table, the current versions it does not hold, and the files of the versions they replace."""
        commits = newest_track_commits(out)
        return {name: _change(out, name, tables[name], commits) for name in self.names}

    def held(self, table: Table, run_id: str) -> int:
        """The videos whose tracks ``table`` holds (of every run: tracks are per video, not per run)."""
        return len(read(table.properties))


def read(properties: dict[str, str]) -> set[str]:
    """The keys a table's properties say it holds."""
    return set(filter(None, properties.get(PROPERTY, "").split(",")))


def written(keys: set[str]) -> str:
    return ",".join(sorted(keys))


def _change(out: Location, name: str, table: Table, commits: dict[str, TrackCommit]) -> Change:
    held = read(table.properties)
    adding = {commit.key: commit for commit in commits.values() if commit.key not in held}
    videos = {layout.track_key_video(key) for key in adding}
    replaced = {key for key in held if layout.track_key_video(key) in videos}
    return Change(
        units=len(adding),
        files=[out.child(_file_of(commit, name)).path for commit in adding.values()],
        summary={ADDED_KEYS: written(set(adding))},
        record={PROPERTY: written(held - replaced | set(adding))},
        dropped=_files_of(table, replaced),
    )


def _file_of(commit: TrackCommit, table: str) -> str:
    """The commit's file of ``table`` (relative to the output)."""
    return next(name for name in commit.files if name.split("/", 1)[0] == table)


def _files_of(table: Table, keys: set[str]) -> tuple[DataFile, ...]:
    """The data files of ``table`` that hold the versions ``keys``, from its current manifests (a scan would
    leave out the empty file of a video without tracks)."""
    snapshot = table.current_snapshot()
    if not keys or snapshot is None:
        return ()
    entries = (entry for manifest in snapshot.manifests(table.io) for entry in manifest.fetch_manifest_entry(table.io))
    return tuple(
        entry.data_file for entry in entries if layout.parse_track_part_file(entry.data_file.file_path) in keys
    )
