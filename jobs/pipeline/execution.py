"""Bounded retries of whole pipeline runs, isolating the shard that keeps failing so the rest completes.

Within one pipeline run Ray retries a task whose actor died (a restarted actor redoes it), a bounded number of
times. When a run still fails (a poison input that kills every actor it meets, a bug), the shards it committed
stay committed and the rest are tried again: a run that made progress is simply repeated; one that made none is
split in halves, so a failing shard ends up alone. A shard that fails alone ``max_shard_attempts`` times is
reported failed with the cause, and every other shard still completes. Infrastructure failures are retried;
application errors of one input never get here, they are already ``error`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

MAX_SHARD_ATTEMPTS = 2
MAX_RUNS = 64
"""An upper bound on pipeline runs per job attempt, whatever happens."""


@dataclass
class Outcome:
    """What execution left behind: shards that failed for good (id -> cause) and every run's error."""

    failed: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return len(self.errors)


def execute(
    shards: list[str],
    run: Callable[[list[str]], str | None],
    committed: Callable[[], set[str]],
    max_shard_attempts: int = MAX_SHARD_ATTEMPTS,
) -> Outcome:
    """Run ``shards`` through ``run`` (one pipeline over the given shards; returns None or the failure's one-line
    cause) until each is in ``committed()`` or has failed alone ``max_shard_attempts`` times."""
    outcome = Outcome()
    alone_failures: dict[str, int] = {}
    queue: list[list[str]] = [sorted(shards)]
    while queue and outcome.runs < MAX_RUNS:
        group = queue.pop(0)
        before = committed()
        group = [s for s in group if s not in before]
        if not group:
            continue
        error = run(group)
        outcome.errors.append(error or "")
        after = committed()
        remaining = [s for s in group if s not in after]
        if not remaining:
            continue
        error = error or "the pipeline ended before these shards were complete"
        if len(remaining) == 1:
            shard = remaining[0]
            alone_failures[shard] = alone_failures.get(shard, 0) + 1
            if alone_failures[shard] >= max_shard_attempts:
                outcome.failed[shard] = error
            else:
                queue.insert(0, remaining)
        elif any(s in after for s in group):
            queue.insert(0, remaining)
        else:
            half = len(remaining) // 2
            queue[:0] = [remaining[:half], remaining[half:]]
    for group in queue:
        for shard in group:
            if shard not in committed():
                outcome.failed.setdefault(shard, "not attempted: too many failed pipeline runs")
    return outcome
