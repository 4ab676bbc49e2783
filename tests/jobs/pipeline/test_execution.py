"""The retry strategy on its own: a plain function stands in for one pipeline run over some shards."""

from __future__ import annotations

from jobs.failures import Failure
from jobs.pipeline.execution import RETRIES, Retries, execute

NODE_LOST = Failure(infrastructure=True, cause="ActorDiedError: node lost")
BUG = Failure(infrastructure=False, cause="TypeError: unsupported operand", detail="Traceback …")


class FakeRuns:
    """Commits up to ``per_run`` shards a run, in order, then fails with ``failure`` (if any is left to fail)."""

    def __init__(self, failures: list[Failure | None], per_run: int = 100) -> None:
        self.failures = list(failures)
        self.per_run = per_run
        self.done: set[str] = set()
        self.calls: list[list[str]] = []
        self.waits: list[float] = []

    def run(self, shards: list[str]) -> Failure | None:
        self.calls.append(list(shards))
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            self.done.update(shards[: self.per_run])
            return failure
        self.done.update(shards)
        return None

    def execute(self, shards: list[str], retries: Retries = RETRIES):
        return execute(shards, self.run, lambda: set(self.done), retries, sleep=self.waits.append)


SHARDS = [f"{i:05d}" for i in range(6)]


def test_everything_commits_in_one_run_when_nothing_fails():
    runs = FakeRuns([])
    outcome = runs.execute(SHARDS)
    assert (outcome.failed, outcome.runs, runs.calls, runs.waits) == ({}, 1, [SHARDS], [])


def test_an_infrastructure_failure_is_retried_after_a_wait_with_the_shards_left_not_halved():
    runs = FakeRuns([NODE_LOST], per_run=2)
    outcome = runs.execute(SHARDS)
    assert outcome.failed == {} and runs.done == set(SHARDS)
    assert runs.calls == [SHARDS, SHARDS[2:]]
    assert len(runs.waits) == 1 and 0 < runs.waits[0] <= RETRIES.base_delay_s


def test_fruitless_runs_wait_longer_each_time_and_stop_when_the_budget_is_spent():
    runs = FakeRuns([NODE_LOST] * 10, per_run=0)
    retries = Retries(attempts=3, base_delay_s=1.0, max_delay_s=100.0)
    outcome = runs.execute(SHARDS, retries)
    assert outcome.runs == retries.attempts + 1
    assert runs.waits == sorted(runs.waits) and runs.waits[-1] > 2 * runs.waits[0]
    assert outcome.failed == dict.fromkeys(SHARDS, NODE_LOST.cause)


def test_a_run_that_commits_something_starts_the_budget_again():
    runs = FakeRuns([NODE_LOST] * 5, per_run=1)
    outcome = runs.execute(SHARDS, Retries(attempts=1, base_delay_s=0.1))
    assert outcome.failed == {} and outcome.runs == 6


def test_a_bug_stops_at_once_with_its_traceback_kept():
    runs = FakeRuns([BUG], per_run=1)
    outcome = runs.execute(SHARDS)
    assert outcome.runs == 1 and runs.waits == []
    assert outcome.bug == BUG
    assert outcome.failed == dict.fromkeys(SHARDS[1:], BUG.cause)


def test_committed_shards_are_not_run_again():
    runs = FakeRuns([])
    runs.done.add("00001")
    runs.execute(SHARDS)
    assert runs.calls == [[s for s in SHARDS if s != "00001"]]


def test_a_stopped_run_is_not_retried_and_its_shards_stay_pending_not_failed():
    """A stop signal that came during the pipeline run and reached it as another failure (the watchdog fired during
    the grace)."""
    runs = FakeRuns([NODE_LOST], per_run=2)
    stopped = lambda: bool(runs.calls)  # noqa: E731
    outcome = execute(SHARDS, runs.run, lambda: set(runs.done), sleep=runs.waits.append, stopped=stopped)
    assert len(runs.calls) == 1 and runs.waits == []
    assert (outcome.runs, outcome.failed, outcome.bug) == (1, {}, None)


def test_a_stop_before_the_first_run_runs_nothing():
    runs = FakeRuns([])
    outcome = execute(SHARDS, runs.run, lambda: set(runs.done), stopped=lambda: True)
    assert runs.calls == [] and outcome.failed == {}
