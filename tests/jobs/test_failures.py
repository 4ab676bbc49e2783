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


def _task_error(cause: BaseException, traceback_text: str) -> ray.exceptions.RayTaskError:
    """What ``ray.get`` raises for a task that failed with ``cause`` (no cluster: the process is named)."""
    return ray.exceptions.RayTaskError("detect", traceback_text, cause, proctitle="ray::detect", pid=1, ip="10.0.0.1")


def test_a_bug_raised_from_none_while_handling_a_flaky_store_is_a_bug():
    """``from None`` says the error handled is not the cause: a bug in the handler is not retried."""
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except OSError:
            raise ValueError("bad frame index") from None
    except ValueError as exc:
        failure = classify(exc)
    assert not failure.infrastructure
    assert failure.cause == "ValueError: bad frame index"


def test_a_bug_raised_plainly_while_handling_a_flaky_store_is_retried():
    """Its traceback tells the store's failure too ("During handling of the above exception"): the handler ran
    only because the store failed, so a retry may well not reach it."""
    try:
        try:
            raise ConnectionResetError("reset by peer")
        except OSError:
            raise ValueError("bad frame index")  # noqa: B904 - the implicit context is what is tested
    except ValueError as exc:
        assert classify(exc).infrastructure


def test_a_task_error_is_told_by_the_exception_it_holds_not_by_its_text():
    """The worker's traceback tells the error its stage handled first; the task failed with the one it holds."""
    text = (
        "Traceback (most recent call last):\n"
        '  File "decode_stage.py", line 200, in read\n'
        "OSError: [Errno 5] Input/output error\n\n"
        "During handling of the above exception, another exception occurred:\n\n"
        "Traceback (most recent call last):\n"
        '  File "decode_stage.py", line 204, in read\n'
        "ValueError: boom\n"
    )
    error = _task_error(ValueError("boom"), text)
    assert describe_failure(error) == "ValueError: boom"
    assert describe_failure(error.as_instanceof_cause()) == "ValueError: boom"
    assert classify(error.as_instanceof_cause()).cause == "ValueError: boom"
    assert not classify(error).infrastructure
    nested = _task_error(_task_error(KeyError("frame"), "KeyError: 'frame'"), text)
    assert describe_failure(nested) == "KeyError: 'frame'"


def test_a_task_error_without_the_exception_is_told_by_its_text():
    """Ray Data's ``UserCodeException`` reaches the driver without its ``__cause__`` (pickling drops it)."""
    text = (
        "ValueError: bad frame\n\nThe above exception was the direct cause of the following exception:\n\n"
        "ray.exceptions.UserCodeException: UDF failed to process a data block.\n"
    )
    error = _task_error(ray.exceptions.UserCodeException("UDF failed to process a data block."), text)
    assert describe_failure(error) == "ValueError: bad frame"
    assert classify(_task_error(ConnectionResetError("reset by peer"), "")).infrastructure
