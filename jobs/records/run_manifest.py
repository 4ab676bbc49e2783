"""The run manifest brought up to date when an attempt ends (``jobs.planning.planned_manifest`` makes it when the
run is planned), and the versions it records."""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata

from schemas.manifest import Attempt, Counts, RunManifest, ShardCommit

VERSIONED_PACKAGES = ("yolonas-batch", "super-gradients", "torch", "ray", "pyarrow")


def finished(
    manifest: RunManifest,
    commits: dict[str, ShardCommit],
    shard_ids: Iterable[str],
    failed: dict[str, str],
    attempt: Attempt,
) -> RunManifest:
    """The manifest once ``attempt`` (the last one) has ended: counts from the commit markers, the state of every
    shard, and the run's status: completed only when every shard is committed and the attempt had no error, else
    interrupted when a signal stopped the attempt (its error then says which, and what was committed), else
    failed."""
    counts = Counts()
    kinds: Counter = Counter()
    for commit in commits.values():
        counts.frames += commit.frames
        counts.ok += commit.ok
        counts.error += commit.errors
        counts.detections += commit.detections
        kinds.update(commit.error_kinds)
    counts.error_kinds = dict(kinds)
    shards = {s: ("committed" if s in commits else "failed" if s in failed else "pending") for s in shard_ids}
    complete = all(state == "committed" for state in shards.values())
    if attempt.stopped_by is not None and not complete:
        attempt = attempt.model_copy(update={"error": _stopped(attempt, len(commits), len(shards))})
    return manifest.model_copy(
        update={
            "counts": counts,
            "shards": shards,
            "status": _status(complete and attempt.error is None, attempt),
            "error": attempt.error,
            "failed_shards": failed,
            "attempts": [*manifest.attempts[:-1], attempt],
            "timings": {**manifest.timings, "last_finished_at": attempt.finished_at, "last_wall_s": attempt.wall_s},
        }
    )


def _stopped(attempt: Attempt, committed: int, shards: int) -> str:
    return (
        f"stopped by {attempt.stopped_by}: {committed} of {shards} shards committed "
        f"({committed - attempt.committed_shards_before} by this attempt); the same command resumes the run"
    )


def _status(completed: bool, attempt: Attempt) -> str:
    if completed:
        return "completed"
    return "failed" if attempt.stopped_by is None else "interrupted"


def versions() -> dict[str, str]:
    """Python's and the key packages' versions, so a run's numbers can be told apart from another build's."""
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "unknown"
    return found


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
