"""The retry strategy on its own: a plain function stands in for one pipeline run over some shards."""

from __future__ import annotations

from jobs.pipeline.execution import execute


class FakeRuns:
    """Commits shards in order; a poison shard fails any run it is part of when its turn comes."""

    def __init__(self, poison: set[str], flaky_once: set[str] = frozenset()) -> None:
        self.poison = poison
        self.flaky_once = set(flaky_once)
        self.done: set[str] = set()
        self.calls: list[list[str]] = []

    def run(self, shards: list[str]) -> str | None:
        self.calls.append(list(shards))
        for shard in shards:
            if shard in self.poison:
                return f"SegmentationFault: decoder crashed on {shard}"
            if shard in self.flaky_once:
                self.flaky_once.discard(shard)
                return "ActorDiedError: node lost"
            self.done.add(shard)
        return None


def test_everything_commits_in_one_run_when_nothing_fails():
    runs = FakeRuns(set())
    outcome = execute(["00000", "00001", "00002"], runs.run, lambda: set(runs.done))
    assert outcome.failed == {} and runs.calls == [["00000", "00001", "00002"]]


def test_a_transient_failure_is_retried_and_loses_nothing():
    runs = FakeRuns(set(), flaky_once={"00001"})
    outcome = execute(["00000", "00001", "00002"], runs.run, lambda: set(runs.done))
    assert outcome.failed == {} and runs.done == {"00000", "00001", "00002"}
    assert runs.calls == [["00000", "00001", "00002"], ["00001", "00002"]]


def test_a_poison_shard_is_isolated_and_reported_while_the_rest_completes():
    shards = [f"{i:05d}" for i in range(10)]
    runs = FakeRuns({"00000"})
    outcome = execute(shards, runs.run, lambda: set(runs.done))
    assert outcome.failed == {"00000": "SegmentationFault: decoder crashed on 00000"}
    assert runs.done == set(shards) - {"00000"}
    assert [c for c in runs.calls if c == ["00000"]] == [["00000"], ["00000"]]  # bounded: twice alone
    assert len(runs.calls) <= 12


def test_two_poison_shards_and_committed_shards_skipped():
    shards = [f"{i:05d}" for i in range(8)]
    runs = FakeRuns({"00003", "00006"})
    runs.done.add("00001")
    outcome = execute(shards, runs.run, lambda: set(runs.done))
    assert set(outcome.failed) == {"00003", "00006"}
    assert runs.done == set(shards) - {"00003", "00006"}
    assert all("00001" not in call for call in runs.calls)
