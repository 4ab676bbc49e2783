"""jobs/pipeline/failures.py: a failed pipeline run is told by its root cause, not by Ray's wrappers."""

from __future__ import annotations

from jobs.pipeline.failures import describe_failure


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
