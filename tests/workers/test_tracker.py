"""``VideoTracker`` on hand-made frames: what a track is (confirmed over two frames, its first box kept, one class),
how tracks are numbered, and how long a lost track lives (``lost_after`` seconds of video, not frames).

Frames are at 25 frames/s; "sampled" ones every third frame (a step of 0.12 s), as ``--video-stride 3`` gives. The
default settings end a track unseen for more than 1 s: 10 sampled frames here, far fewer than the 25 updates
``trackers``' frame-count budget would allow, so a track that ends there ended by time."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pytest

from schemas.track_config import TrackerSettings
from workers.tracker import FrameBoxes, TrackRows, VideoTracker

FPS = 25.0
STRIDE = 3
Box = tuple[int, float, float, float, float, float]
"""(class id, score, x1, y1, x2, y2)."""


def frame(index: int, boxes: list[Box]) -> FrameBoxes:
    """Frame ``index`` (its timestamp index / 25) with ``boxes`` in the given row order."""
    return FrameBoxes(
        frame_index=index,
        timestamp_s=index / FPS,
        class_ids=np.array([b[0] for b in boxes], np.int32),
        scores=np.array([b[1] for b in boxes], np.float32),
        boxes=np.array([b[2:] for b in boxes], np.float32).reshape(-1, 4),
    )


def walker(class_id: int, x: float, score: float = 0.9) -> Callable[[int], Box]:
    """An object 50x100 px at ``x`` moving 1 px right per video frame: its box at any frame index."""
    return lambda index: (class_id, score, x + index, 100.0, x + 50 + index, 200.0)


def track(frames: list[FrameBoxes]) -> TrackRows:
    tracker = VideoTracker(TrackerSettings(), FPS)
    for each in frames:
        tracker.update(each)
    return tracker.finish()


def spans(rows: TrackRows) -> dict[int, tuple[int, list[int]]]:
    """Track id -> (its class, its frames in order)."""
    return {
        int(t): (int(rows.class_ids[rows.track_ids == t][0]), rows.frame_indices[rows.track_ids == t].tolist())
        for t in np.unique(rows.track_ids)
    }


def test_an_object_seen_on_every_frame_is_one_track_of_its_own_boxes():
    """Its first box (frame 0, before ``trackers`` names the track) included; boxes and scores untouched."""
    scores = [0.9, 0.62, 0.75, 0.51, 0.88, 0.93, 0.7, 0.66]
    frames = [frame(i, [(0, s, 10.25 + 3 * i, 20.5, 60.75 + 3 * i, 120.0 + i)]) for i, s in enumerate(scores)]
    rows = track(frames)
    assert rows.track_ids.tolist() == [1] * len(frames)
    assert rows.frame_indices.tolist() == list(range(len(frames)))
    assert rows.timestamps.tolist() == [i / FPS for i in range(len(frames))]
    assert rows.class_ids.tolist() == [0] * len(frames)
    np.testing.assert_array_equal(rows.scores, np.array(scores, np.float32))
    np.testing.assert_array_equal(rows.boxes, np.concatenate([f.boxes for f in frames]))
    assert rows.tracks == 1


def test_a_box_seen_on_one_frame_only_is_no_track():
    """A false positive beside a real object: the object's track alone, without the stray box."""
    person = walker(0, 100)
    stray = (0, 0.95, 400.0, 300.0, 460.0, 380.0)
    frames = [frame(i, [person(i), stray] if i == 2 else [person(i)]) for i in range(6)]
    rows = track(frames)
    assert spans(rows) == {1: (0, [0, 1, 2, 3, 4, 5])}
    assert [400.0, 300.0, 460.0, 380.0] not in rows.boxes.tolist()
    assert len(track([frame(0, [stray])] + [frame(i, []) for i in range(1, 5)])) == 0


def test_two_classes_at_the_same_place_are_two_tracks():
    """The same box found as a person and as a dog: one track per class, never one track changing class."""
    person, dog = walker(0, 100), walker(3, 100, score=0.8)
    rows = track([frame(i, [dog(i), person(i)]) for i in range(5)])
    assert spans(rows) == {1: (0, [0, 1, 2, 3, 4]), 2: (3, [0, 1, 2, 3, 4])}
    np.testing.assert_array_equal(rows.scores[rows.class_ids == 3], np.full(5, 0.8, np.float32))


def test_ids_count_from_one_by_first_frame_then_class_then_x1():
    """Whatever order the rows and classes come in (a truck first, the rightmost person before the leftmost),
    the ids follow (first frame, class, x1)."""
    truck, right, left, car = walker(2, 300), walker(0, 500), walker(0, 100), walker(1, 700)
    frames = [frame(i, [truck(i), right(i), left(i)] + ([car(i)] if i >= 2 else [])) for i in range(6)]
    rows = track(frames)
    first_x1 = {int(t): float(rows.boxes[rows.track_ids == t][0, 0]) for t in np.unique(rows.track_ids)}
    assert {t: (cls, seen[0]) for t, (cls, seen) in spans(rows).items()} == {
        1: (0, 0),
        2: (0, 0),
        3: (2, 0),
        4: (1, 2),
    }
    assert first_x1 == {1: 100.0, 2: 500.0, 3: 300.0, 4: 702.0}


def sampled_with_gap(gone: range, end: int, filler: list[Box]) -> list[FrameBoxes]:
    """Every third frame up to ``end``: a person seen except at the frames in ``gone``, where the frame holds
    ``filler`` instead (no box, or boxes of another class)."""
    person = walker(0, 100)
    return [frame(i, filler if i in gone else [person(i)]) for i in range(0, end, STRIDE)]


def test_a_track_survives_a_gap_shorter_than_lost_after():
    """Last seen at frame 9, back at 33: 0.96 s unseen, under the 1 s."""
    rows = track(sampled_with_gap(range(12, 31), 45, []))
    assert spans(rows) == {1: (0, [0, 3, 6, 9, 33, 36, 39, 42])}


FILLERS = {
    "empty frames": [],
    "another class's boxes": [(1, 0.9, 500.0, 300.0, 560.0, 400.0)],
}


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_a_track_ends_after_a_gap_longer_than_lost_after(filler):
    """Last seen at frame 9, back at 39: 1.2 s unseen. Frames with no box of its class still age it (here 9 of
    them, under ``trackers``' 25-frame budget, so time ended it): it comes back as a new track, from its first
    box again."""
    rows = track(sampled_with_gap(range(12, 37), 51, filler))
    person = {t: frames for t, (cls, frames) in spans(rows).items() if cls == 0}
    assert sorted(person.values()) == [[0, 3, 6, 9], [39, 42, 45, 48]]
    assert rows.tracks == 2 + bool(filler)


def test_new_objects_appearing_as_a_lost_track_expires_keep_their_first_boxes():
    """Frames 12-45 never reach the tracker (error frames are skipped): at frame 48 the person's track expires
    and two other people appear, each a track from frame 48."""
    person, second, third = walker(0, 100), walker(0, 400), walker(0, 700)
    frames = [frame(i, [person(i)]) for i in range(0, 12, STRIDE)]
    frames += [frame(i, [second(i), third(i)]) for i in range(48, 60, STRIDE)]
    rows = track(frames)
    assert spans(rows) == {1: (0, [0, 3, 6, 9]), 2: (0, [48, 51, 54, 57]), 3: (0, [48, 51, 54, 57])}


def test_a_tracker_fed_nothing_finishes_with_empty_typed_columns():
    rows = VideoTracker(TrackerSettings(), FPS).finish()
    columns = (rows.track_ids, rows.frame_indices, rows.timestamps, rows.class_ids, rows.scores, rows.boxes)
    assert [(c.dtype, c.shape) for c in columns] == [
        (np.int32, (0,)),
        (np.int64, (0,)),
        (np.float64, (0,)),
        (np.int32, (0,)),
        (np.float32, (0,)),
        (np.float32, (0, 4)),
    ]
    assert (len(rows), rows.tracks) == (0, 0)
