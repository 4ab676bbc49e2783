"""Tracking quality on synthetic ground truth (``tests/support/tracking_truth.py``): the street scene's detections
committed as one run whose video was split into two frame ranges (two shards), tracked by ``plan_videos`` and
``track_video`` as ``track``'s tasks do (no Ray), scored with ``motmetrics`` on the sampled frames.

The bars (measured with the default ``TrackerSettings``, seed 0; over seeds 0–11 in parentheses):

- every frame (stride 1): IDF1 0.945 (0.936–0.952), every object one track, no identity switch. The issue's bar is
  IDF1 >= 0.9. A missed box is missed by its track too (tracks keep the detector's boxes), so with one box in ten
  missed IDF1 stays near 0.95 at best;
- every third frame (stride 3): IDF1 0.938 (0.911–0.958). Held to 0.92, a little below the measurement: in some
  seeds an object loses its track once, to a false positive that fell where it was missed, or after its
  occlusion, when the predicted box has drifted over five unseen samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from common.storage import location
from schemas.manifest import TrackCommit
from tests.support.tracking_truth import Scores, Synthetic, commit_shards, score, street, synthetic, track_output

FRAMES = 250
IDF1_BARS = {1: 0.9, 3: 0.92}
WHOLE_VIDEO_OBJECT = 1
"""Person 1 is seen from the first frame to the last, so its track crosses the shard boundary."""


@dataclass(frozen=True)
class Tracked:
    stride: int
    synthetic: Synthetic
    commit: TrackCommit
    tracks: pa.Table
    scores: Scores

    @property
    def boundary(self) -> int:
        """The first frame of the second shard."""
        return self.synthetic.frames[len(self.synthetic.frames) // 2].index


@pytest.fixture(scope="module", params=[1, 3], ids=["stride1", "stride3"])
def tracked(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tracked:
    """The street scene sampled every ``stride``-th frame, committed in two shards split mid-video, tracked."""
    made = synthetic(street(FRAMES), FRAMES, stride=request.param, seed=0)
    out = location(str(tmp_path_factory.mktemp(f"stride{request.param}") / "out"))
    commit_shards(out, made.frames, shards=2)
    commit, tracks = track_output(out)
    scores = score(made.truth, tracks)
    print(f"stride {request.param}: {scores}")  # shown with -s: what the bars were set from
    return Tracked(request.param, made, commit, tracks, scores)


def test_idf1_clears_the_bar(tracked: Tracked) -> None:
    assert tracked.scores.objects == len(tracked.synthetic.paths)
    assert tracked.scores.idf1 >= IDF1_BARS[tracked.stride], tracked.scores


def test_each_object_keeps_one_track(tracked: Tracked) -> None:
    """The crossing people, the occluded dog, the car leaving and the truck entering keep one identity each (in
    this seed, at both strides): as many tracks as objects, no switch, each object followed by one id."""
    scores = tracked.scores
    assert (scores.switches, scores.tracks) == (0, len(tracked.synthetic.paths)), scores
    assert scores.fragmented == {}, scores


def test_the_video_was_tracked_from_two_shards(tracked: Tracked) -> None:
    """Both halves of the video were read, so what follows is about a real range boundary."""
    assert len(tracked.commit.inputs) == 2
    assert tracked.commit.frames == len(tracked.synthetic.frames)


def test_tracks_keep_the_detections_boxes(tracked: Tracked) -> None:
    """Each track row is one detection of its frame, box, class and score exactly as the detector gave them."""
    detected = {
        (frame.index, name, *np.asarray([score, x1, y1, x2, y2], np.float32).tolist())
        for frame in tracked.synthetic.frames
        for name, score, x1, y1, x2, y2 in frame.boxes
    }
    rows = tracked.tracks.select(["frame_index", "class_name", "score", "x1", "y1", "x2", "y2"]).to_pylist()
    assert rows and all(tuple(row.values()) in detected for row in rows)
    assert len({tuple(row.values()) for row in rows}) == len(rows), "a detection went to two tracks"


def test_track_ids_count_from_one(tracked: Tracked) -> None:
    ids = sorted(set(tracked.tracks.column("track_id").to_pylist()))
    assert ids == list(range(1, tracked.commit.tracks + 1))


def test_a_track_keeps_its_id_across_the_shard_boundary(tracked: Tracked) -> None:
    (track_id,) = tracked.scores.ids_per_object[WHOLE_VIDEO_OBJECT]
    rows = zip(tracked.tracks["frame_index"].to_pylist(), tracked.tracks["track_id"].to_pylist())
    frames = [frame for frame, track in rows if track == track_id]
    assert min(frames) < tracked.boundary <= max(frames), (tracked.boundary, min(frames), max(frames))


def test_tracking_again_gives_the_same_tracks(tracked: Tracked, tmp_path: Path) -> None:
    """Same detections, same settings: the same table, ids included, from a fresh output."""
    out = location(str(tmp_path / "again"))
    commit_shards(out, tracked.synthetic.frames, shards=2)
    _, again = track_output(out)
    assert again.equals(tracked.tracks)
