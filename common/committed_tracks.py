"""Which committed tracks of a job output are current: of each video, those of its newest track marker.

``track`` writes a video's two files, then its marker (``_runs/_tracks/<key>.json``), and removes an older version
once a newer one is committed; a run killed in between may leave two committed versions of a video. Every reader
takes the one committed last (``committed_at``, then the key, so that two of the same second still choose one):
``export`` of tracks (``exports.tracks_reader``) and the Iceberg tables of tracks (``tables.track_tables``), which
must hold exactly what ``export`` reads.
"""

from __future__ import annotations

from pydantic import ValidationError

from common.errors import UsageError
from common.storage import Location
from schemas import layout
from schemas.manifest import TrackCommit
from workers.errors import one_line


def track_markers(out: Location) -> list[str]:
    """The paths of ``out``'s track markers, from a fresh listing (none when it has no tracks)."""
    return [path for path in out.child(layout.TRACK_MARKERS).files() if layout.parse_track_marker(path) is not None]


def newest_track_commits(out: Location) -> dict[str, TrackCommit]:
    """Video URI -> its newest track marker. ``UsageError`` (one line) for a marker that cannot be read."""
    newest: dict[str, TrackCommit] = {}
    for path in track_markers(out):
        where = Location(out.fs, path)
        try:
            commit = TrackCommit.model_validate_json(where.read_bytes())
        except (OSError, ValidationError) as exc:
            raise UsageError(f"cannot read track marker {where.uri}: {one_line(exc, keep='first')}") from None
        held = newest.get(commit.source_uri)
        if held is None or (commit.committed_at, commit.key) > (held.committed_at, held.key):
            newest[commit.source_uri] = commit
    return newest
