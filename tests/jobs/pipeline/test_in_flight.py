"""The registry of frames in flight on its own (the plain class the Ray actor wraps): deaths are counted against
the frames a dead process was running, alone or in a batch, and a frame is poison only after dying alone twice."""

from __future__ import annotations

from jobs.pipeline.in_flight import POISON_DEATHS, InFlight, Suspect


def test_a_batch_that_ends_leaves_no_suspect():
    registry = InFlight()
    assert registry.begin("a", [1, 2, 3]) == {}
    registry.end("a")
    assert registry.begin("b", [1, 2, 3]) == {}


def test_the_next_batch_of_a_process_ends_its_previous_one():
    registry = InFlight()
    registry.begin("a", [1, 2])
    registry.begin("a", [3, 4])
    assert registry.begin("b", [1, 2]) == {}


def test_frames_of_a_process_that_died_mid_batch_are_suspects_and_the_poison_is_found_alone():
    registry = InFlight()
    registry.begin("a", [1, 2, 3])  # "a" dies mid-batch; Ray redoes the batch in "b"
    assert registry.begin("b", [1, 2, 3]) == dict.fromkeys([1, 2, 3], Suspect(deaths=1, alone=0))
    registry.begin("b", [1])  # "b" runs the suspects one at a time
    registry.begin("b", [2])  # and dies on 2
    for alone in range(1, POISON_DEATHS + 1):
        suspects = registry.begin(f"c{alone}", [1, 2, 3])
        assert suspects[2] == Suspect(deaths=1 + alone, alone=alone)
        assert not suspects[1].poison and not suspects[3].poison
        registry.begin(f"c{alone}", [2])  # dies on it alone again
    assert registry.begin("d", [1, 2, 3])[2].poison


def test_a_frame_in_flight_in_a_live_process_is_not_a_suspect_of_its_own():
    registry = InFlight()
    registry.begin("a", [1])
    assert registry.begin("a", [1]) == {}
