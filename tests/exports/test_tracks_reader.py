"""``TracksReader`` on a tracked synthetic output (``commit_run`` then ``plan_videos`` + ``track_video``, no model):
videos sorted by URI, described by their markers, tracks as the ``tracks`` table holds them; ``--classes`` and
``--min-score`` act on whole tracks; the options of frames and an untracked output are usage errors; of two
versions of a video the newer marker wins."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from common.errors import UsageError
from common.storage import Location, location
from exports.records import VideoTracks
from exports.tracks_reader import TracksReader
from schemas import layout
from schemas.export_config import ExportConfig
from schemas.track_config import TrackerSettings
from tests.support.outputs import run_id
from tests.support.tracked_outputs import CLIP, HEIGHT, WALK, WIDTH, commit_videos, track_all, tracks_of


def config(out: Location, **options) -> ExportConfig:
    return ExportConfig(output=out.uri, format="mot", to="/unused", **options)


def read(out: Location, **options) -> dict[str, VideoTracks]:
    """The videos the reader yields, by URI, in its order."""
    return {video.source_uri: video for video in TracksReader(config(out, **options))}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    out = location(str(tmp_path_factory.mktemp("tracked") / "out"))
    commit_videos(out)
    commits = {commit.source_uri: commit for commit in track_all(out)}
    return SimpleNamespace(out=out, commits=commits)


def track_ids(video: VideoTracks) -> dict[int, int]:
    """Track id -> category."""
    return {t.track_id: t.category for t in video.tracks}


def assert_tracks_are_the_table(video: VideoTracks, table: pa.Table) -> None:
    """Each track is its rows of the table, in frame order, class id as category (no ``--classes``)."""
    assert [t.track_id for t in video.tracks] == sorted(set(table.column("track_id").to_pylist()))
    for t in video.tracks:
        rows = table.filter(pc.equal(table.column("track_id"), t.track_id))
        assert {t.category} == set(rows.column("class_id").to_pylist())
        assert t.frames.tolist() == rows.column("frame_index").to_pylist()
        assert t.times.tolist() == rows.column("timestamp_s").to_pylist()
        np.testing.assert_array_equal(t.scores, rows.column("score").to_numpy())
        boxes = np.stack([rows.column(c).to_numpy() for c in ("x1", "y1", "x2", "y2")], axis=1)
        np.testing.assert_array_equal(t.boxes, boxes)


def test_videos_come_sorted_with_their_markers_facts_and_tracks(tracked):
    videos = read(tracked.out)
    assert list(videos) == [CLIP, WALK]
    facts = {uri: (v.name, v.fps, v.frame_count, v.width, v.height, v.frame_step) for uri, v in videos.items()}
    assert facts == {CLIP: ("clip.mp4", 25.0, 8, WIDTH, HEIGHT, 1), WALK: ("walk.mp4", 25.0, 28, WIDTH, HEIGHT, 3)}
    assert track_ids(videos[CLIP]) == {1: 0, 2: 1} and track_ids(videos[WALK]) == {1: 0}
    for uri, video in videos.items():
        assert_tracks_are_the_table(video, tracks_of(tracked.out, tracked.commits[uri]))


def test_classes_keeps_and_renames_the_named_class_only(tracked):
    reader = TracksReader(config(tracked.out, classes={"person": "pedestrian"}))
    videos = {video.source_uri: video for video in reader}
    assert reader.categories.names == ("pedestrian",)
    assert track_ids(videos[CLIP]) == {1: 0} and track_ids(videos[WALK]) == {1: 0}
    assert reader.tracks == 2


def test_min_score_drops_whole_tracks_by_their_mean_score(tracked):
    """The walk's track (mean 0.54) goes, with its two boxes above 0.6; the clip's keep all their boxes."""
    reader = TracksReader(config(tracked.out, min_score=0.6))
    videos = {video.source_uri: video for video in reader}
    assert videos[WALK].tracks == ()
    assert {t.track_id: len(t.frames) for t in videos[CLIP].tracks} == {1: 8, 2: 8}
    assert reader.tracks == 2


@pytest.mark.parametrize(
    ("option", "flag"),
    [
        ({"run_id": run_id(3)}, "--run-id"),
        ({"split": {"train": 1.0}}, "--split"),
        ({"include_errors": True}, "--errors"),
    ],
)
def test_options_of_frames_are_usage_errors_for_tracks(tracked, option, flag):
    with pytest.raises(UsageError, match=f"^{flag} does not apply to --format mot"):
        TracksReader(config(tracked.out, **option))


def test_an_output_never_tracked_is_a_usage_error(tmp_path: Path):
    out = location(str(tmp_path / "out"))
    commit_videos(out)
    with pytest.raises(UsageError, match="has no tracks: run 'yolonas-batch track "):
        TracksReader(config(out))


@pytest.mark.parametrize("newer", ["default", "strict"])
def test_of_two_committed_versions_the_newer_marker_is_read(tmp_path: Path, newer: str):
    """Both versions committed (a run killed before it removed the older): the one committed last is read,
    whichever settings it had. Strict settings start no track from the clip's car (0.8)."""
    out = location(str(tmp_path / "out"))
    commit_videos(out)
    versions = {"default": TrackerSettings(), "strict": TrackerSettings(new_track_score=0.85)}
    commits = {name: track_all(out, settings)[0] for name, settings in versions.items()}
    assert (commits["default"].tracks, commits["strict"].tracks) == (2, 1)
    for name, commit in commits.items():
        stamped = commit.model_copy(update={"committed_at": f"2026-02-0{1 + (name == newer)}T00:00:00+00:00"})
        out.child(layout.track_marker(commit.key)).write_bytes_atomic(stamped.model_dump_json().encode())
    assert len(read(out)[CLIP].tracks) == commits[newer].tracks
    assert_tracks_are_the_table(read(out)[CLIP], tracks_of(out, commits[newer]))
