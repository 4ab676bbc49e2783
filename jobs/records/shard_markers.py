"""The commit markers of one run's shards, and the table files they vouch for: which shards of a run are done.

A shard counts once its marker ``_runs/<run_id>/shards/<shard>.json`` exists (``jobs.commit.committer`` writes it
last). Planning (resume, ``--incremental``), the run store (``--overwrite``) and the committer all go by this one
listing.
"""

from __future__ import annotations

import posixpath

from common.storage import Location
from schemas import layout
from schemas.manifest import ShardCommit


class ShardMarkers:
    """The markers of run ``run_id`` under ``out``."""

    def __init__(self, out: Location, run_id: str) -> None:
        self.out = out
        self.run_id = run_id

    def marker(self, shard_id: str) -> Location:
        return self.out.child(layout.marker(self.run_id, shard_id))

    def committed(self) -> dict[str, ShardCommit]:
        """Markers present, read (what the run's manifest counts)."""
        return {shard: ShardCommit.model_validate_json(marker.read_bytes()) for shard, marker in self._listed().items()}

    def committed_ids(self) -> set[str]:
        """Shard ids with a marker, from the folder listing alone (markers are not read)."""
        return set(self._listed())

    def drop_unbacked(self) -> set[str]:
        """Remove the markers whose part files are not all there, and return their shards.

        Run when the output's lease was taken over from a run that never released it: a publish task of that run
        may have checked its fence, then stalled past the takeover, and written its marker after this run had
        cleaned up the shard's files. Its shard is then simply done again."""
        present = {posixpath.relpath(path, self.out.path) for path in table_files(self.out)}
        unbacked = {shard for shard, commit in self.committed().items() if not set(commit.files) <= present}
        for shard in unbacked:
            self.marker(shard).fs.rm_file(self.marker(shard).path)
        return unbacked

    def _listed(self) -> dict[str, Location]:
        """Shard id -> marker, from one fresh listing (a partial ``.tmp`` is not one)."""
        runs = self.out.child(layout.RUNS).path
        found = {}
        for path in self.out.child(layout.markers(self.run_id)).files():
            if (marker := layout.parse_marker(posixpath.relpath(path, runs))) is not None:
                found[marker[1]] = Location(self.out.fs, path)
        return found


def table_files(out: Location) -> list[str]:
    """Every file under the tables' folders of ``out``, from a fresh listing."""
    return [path for table in layout.TABLES for path in out.child(table).files()]
