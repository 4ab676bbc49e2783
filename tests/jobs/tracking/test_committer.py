"""``TrackCommitter`` on an output of one video (``commit_run``, no model): the marker comes last and says what the
formats of tracks need; ``clean`` removes what no reader should see and nothing else; ``committed_keys`` is the
markers' keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.retries import Deadline
from common.storage import Location, location
from jobs.records.lease_record import DEFAULT_WRITE_DEADLINE_S
from jobs.tracking.committer import TrackCommitter
from jobs.tracking.plan import VideoWork, plan_videos
from jobs.tracking.track_video import track_video
from schemas import layout
from schemas.manifest import TrackCommit
from schemas.track_config import TrackerSettings
from tests.support.outputs import commit_run, run_id
from tests.support.tracked_outputs import HEIGHT, WIDTH, moving, video_frames

VIDEO = "file:///data/clip.mp4"
SAMPLED = list(range(0, 20, 2))
"""Every other frame of the first 20: the frame step is 2, the last frame seen 18."""
DEFAULT = TrackerSettings()
OTHER_SETTINGS = TrackerSettings(min_iou=0.3)


@pytest.fixture
def out(tmp_path: Path) -> Location:
    """One video: a person on each sampled frame and a car on one frame only (a detection in no track)."""
    out = location(str(tmp_path / "out"))
    frames = video_frames(
        VIDEO, SAMPLED, moving("person", [0.9] * len(SAMPLED), (100, 100)), [("car", 0.8, 400, 50, 500, 100)]
    )
    commit_run(out, run_id(3), {"00000": frames})
    return out


def work(out: Location, settings: TrackerSettings = DEFAULT) -> VideoWork:
    (planned,) = plan_videos(out, None, settings)
    return planned


def names(out: Location) -> set[str]:
    """Every file under ``out``'s track tables and markers, relative to ``out``."""
    root = out.path.rstrip("/") + "/"
    folders = (*layout.TRACK_TABLES, layout.TRACK_MARKERS)
    return {path.removeprefix(root) for folder in folders for path in out.child(folder).files()}


def version_files(key: str, partition: str) -> set[str]:
    """A committed version's marker and its two part files."""
    parts = {layout.track_part_file(table, partition, key) for table in layout.TRACK_TABLES}
    return {layout.track_marker(key), *parts}


class Witness:
    """A fence that records which track files exist when the committer checks it, just before the marker."""

    def __init__(self, out: Location) -> None:
        self.out = out
        self.seen: set[str] | None = None
        self.deadline = Deadline(DEFAULT_WRITE_DEADLINE_S)  # what bounds the committer's writes, as a fence's

    def check(self) -> None:
        self.seen = names(self.out)


def test_the_marker_comes_after_both_files_and_names_them(out):
    """The fence is checked after the files are written and before the marker: both files are there, the marker
    is not yet."""
    planned = work(out)
    witness = Witness(out)
    written = track_video(out, planned, TrackerSettings(), fence=witness)
    files = [layout.track_part_file(table, planned.partition, planned.key) for table in layout.TRACK_TABLES]
    assert witness.seen == set(files)
    assert written.files == files
    assert names(out) == {*files, layout.track_marker(planned.key)}
    assert TrackCommit.model_validate_json(out.child(layout.track_marker(planned.key)).read_bytes()) == written


def test_the_marker_says_what_the_formats_of_tracks_need(out):
    planned = work(out)
    commit = track_video(out, planned, TrackerSettings())
    assert (commit.key, commit.source_uri, commit.partition) == (planned.key, VIDEO, planned.partition)
    assert commit.inputs == list(planned.inputs) and len(commit.inputs) == 1
    assert commit.settings == TrackerSettings().model_dump()
    assert (commit.fps, commit.frame_count, commit.width, commit.height, commit.frame_step) == (
        25.0,
        SAMPLED[-1] + 1,
        WIDTH,
        HEIGHT,
        2,
    )
    assert (commit.frames, commit.error_frames, commit.detections, commit.tracks, commit.boxes) == (
        len(SAMPLED),
        0,
        len(SAMPLED) + 1,
        1,
        len(SAMPLED),
    )


def test_clean_removes_orphans_and_partial_files_only(out):
    """A part file whose key has no marker (a killed attempt's) and a ``.tmp`` go; a user's file in ``tracks/``
    and the committed version stay."""
    committed = track_video(out, work(out), TrackerSettings())
    orphan = layout.track_part_file(layout.TRACKS, committed.partition, "0123456789" * 2)
    partial = committed.files[1] + ".1a2b3c4d" + layout.PARTIAL_SUFFIX
    notes = f"{layout.TRACKS}/notes.txt"
    for name in (orphan, partial, notes):
        out.child(name).write_bytes_atomic(b"x")
    assert TrackCommitter(out).clean({}) == 2
    assert names(out) == version_files(committed.key, committed.partition) | {notes}


def test_clean_removes_an_older_version_once_the_current_one_is_committed(out):
    older = track_video(out, work(out), TrackerSettings())
    newer = track_video(out, work(out, OTHER_SETTINGS), OTHER_SETTINGS)
    video, half = layout.track_key_video(newer.key), layout.TRACK_KEY_HALF
    both = version_files(older.key, older.partition) | version_files(newer.key, newer.partition)
    assert layout.track_key_video(older.key) == video and older.key != newer.key
    committer = TrackCommitter(out)
    assert committer.clean({video: video + "f" * half}) == 0, "the current key is not committed: keep every version"
    assert committer.clean({"a" * half: newer.key}) == 0, "another video's entry says nothing of this one"
    assert names(out) == both
    assert committer.clean({video: newer.key}) == 3
    assert names(out) == version_files(newer.key, newer.partition)


def test_committed_keys_are_the_markers_keys(out):
    committer = TrackCommitter(out)
    assert committer.committed_keys() == set()
    keys = {track_video(out, work(out, s), s).key for s in (TrackerSettings(), OTHER_SETTINGS)}
    out.child(layout.track_part_file(layout.TRACKS, "p", "0123456789" * 2)).write_bytes_atomic(b"x")
    out.child(layout.track_marker("9" * 20) + layout.PARTIAL_SUFFIX).write_bytes_atomic(b"{}")
    assert committer.committed_keys() == keys and len(keys) == 2
