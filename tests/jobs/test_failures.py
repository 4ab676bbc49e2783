"""jobs/failures.py: a failed pipeline run is told by its root cause, not by Ray's wrappers, and classified:
infrastructure (retried) or a bug (not)."""

from __future__ import annotations

import ray.exceptions
from ray.data.exceptions import ExecutionTimeoutError

from jobs.failures import Stalled, classify, describe_failure


def test_the_cause_inside_a_ray_traceback_is_named():
    text = (
        "ray.exceptions.RayTaskError(OSError): ray::MapBatches(DetectStage)() (pid=1, ip=127.0.0.1)\n"
        "Traceback (most recent call last):\n"
        '  File "detector.py", line 3, in detect\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
    )
    assert describe_failure(RuntimeError(text)) == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"


def test_ray_own_exception_lines_are_skipped():
    text = "ray.exceptions.ActorDiedError: The actor died unexpectedly\nValueError: bad frame"
    assert describe_failure(RuntimeError(text)) == "ValueError: bad frame"


def test_any_other_exception_is_its_type_and_last_line():
    assert describe_failure(TimeoutError("waiting\nfor the cluster")) == "TimeoutError: for the cluster"
    assert describe_failure(KeyError()) == "KeyError"


def test_a_dead_actor_a_stall_and_a_flaky_store_are_infrastructure():
    assert classify(ray.exceptions.ActorDiedError()).infrastructure
    assert classify(ExecutionTimeoutError("no progress")).infrastructure
    assert classify(Stalled("no publish task ended")).infrastructure
    assert classify(ConnectionResetError("reset by peer")).infrastructure


def test_infrastructure_behind_the_wrappers_of_a_task_counts():
    try:
        try:
            raise TimeoutError("read timed out")
        except TimeoutError as cause:
            raise RuntimeError("write stage failed") from cause
    except RuntimeError as exc:
        assert classify(exc).infrastructure


def test_anything_else_is_a_bug_with_its_traceback():
    try:
        {}["missing"]
    except KeyError as exc:
        failure = classify(exc)
    assert not failure.infrastructure
    assert failure.cause == "KeyError: 'missing'"
    assert "Traceback (most recent call last)" in failure.detail and "test_failures.py" in failure.detail
    assert not classify(FileNotFoundError("gone")).infrastructure


def test_a_stall_says_what_was_waiting_on_what_in_one_line():
    message = (
        "Dataset execution made no progress for at least 31s of scheduling time (timeout: 30s).\n"
        "Operators still running:\n"
        "  - MapBatches(DetectStage): 1 active task(s), 3 finished, 3 outputs taken\n"
        "If this is expected, raise the timeout."
    )
    failure = classify(ExecutionTimeoutError(message))
    assert failure.infrastructure
    assert failure.cause == (
        "stalled: Dataset execution made no progress for at least 31s of scheduling time (timeout: 30s). "
        "Waiting on: MapBatches(DetectStage): 1 active task(s), 3 finished, 3 outputs taken"
    )
