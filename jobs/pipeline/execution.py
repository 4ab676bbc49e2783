"""Bounded retries of whole pipeline runs after an infrastructure failure, with backoff.

Within one pipeline run Ray itself redoes the work of a dead actor or node, without limit (an input that kills
every actor it meets is answered with error rows by the model stage, ``jobs.pipeline.in_flight``), and the stall
watchdog bounds a run that stops making progress. What still fails a run is retried here, for the shards it did
not commit, after a wait that doubles while runs fail without committing anything (a node being replaced, a store
throttling), and at most ``Retries.attempts`` times in a row. A bug fails at once: a run of the same code would
fail the same way, and the traceback is what its reader needs. A stopped run (``jobs.stopping``) is never retried.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from jobs.failures import Failure

MAX_RUNS = 64
"""An upper bound on pipeline runs per job attempt, whatever happens."""


@dataclass(frozen=True)
class Retries:
    """How often and how patiently failed pipeline runs are retried."""

    attempts: int = 3
    """Retries in a row of runs that committed nothing; a run that commits a shard starts the count again."""
    base_delay_s: float = 5.0
    """The first wait; each fruitless run doubles it. Long enough for Ray to declare a lost node dead."""
    max_delay_s: float = 120.0

    def delay(self, fruitless: int) -> float:
        """The wait before the next run, with jitter so that jobs hit by one outage do not retry in step."""
        return min(self.max_delay_s, self.base_delay_s * 2**fruitless) * random.uniform(0.75, 1.0)


RETRIES = Retries()


@dataclass
class Outcome:
    """What execution left behind: shards not committed (id -> cause), each failed run's failure, and the bug that
    stopped it, if one did."""

    runs: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    bug: Failure | None = None


def execute(
    shards: list[str],
    run: Callable[[list[str]], Failure | None],
    committed: Callable[[], set[str]],
    retries: Retries = RETRIES,
    on_retry: Callable[[Failure, int, float], None] = lambda failure, shards, delay: None,
    sleep: Callable[[float], None] = time.sleep,
    stopped: Callable[[], bool] = lambda: False,
) -> Outcome:
    """Run ``shards`` through ``run`` (one pipeline over the given shards; returns None or how it failed) until each
    is in ``committed()``, a bug stops it, ``retries`` are spent, or ``stopped()`` (a stop signal came: the shards
    left stay pending, not failed). ``on_retry(failure, shards left, delay)`` is told before each wait."""
    outcome = Outcome()
    done = committed()
    remaining = [s for s in sorted(shards) if s not in done]
    fruitless = 0
    while remaining:
        if stopped():
            return outcome
        failure = run(remaining)
        outcome.runs += 1
        done = committed()
        left = [s for s in remaining if s not in done]
        if not left:
            return outcome
        failure = failure or Failure(True, "the pipeline ended before every shard was committed")
        outcome.failures.append(failure)
        fruitless = fruitless + 1 if len(left) == len(remaining) else 0
        remaining = left
        if stopped():
            return outcome
        if not failure.infrastructure:
            outcome.bug = failure
            break
        if fruitless > retries.attempts or outcome.runs >= MAX_RUNS:
            break
        delay = retries.delay(fruitless)
        on_retry(failure, len(remaining), delay)
        sleep(delay)
    outcome.failed = {shard: outcome.failures[-1].cause for shard in remaining}
    return outcome
