"""A failed pipeline run told in one line, and classified: infrastructure, worth retrying, or a bug, not.

Infrastructure failures are those of the cluster and the store, not of the job's code or of one input: an actor
or node that died, an object lost with its node, a pipeline that stopped making progress, a store that did not
answer. Retrying them (after a wait) can succeed. Anything else that escapes a pipeline run is a bug, in the
driver or in a stage's code: running it again would fail the same way, so the job stops at once with the
traceback. An input's own failure never gets here: the stages answer it with an ``error`` row.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass

import ray.exceptions
from ray.data.exceptions import ExecutionTimeoutError

from common.retries import is_transient
from workers.errors import one_line

_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$")

_INFRASTRUCTURE = (
    ray.exceptions.RayActorError,  # the actor died (its node too), or is unreachable
    ray.exceptions.WorkerCrashedError,
    ray.exceptions.NodeDiedError,
    ray.exceptions.LocalRayletDiedError,
    ray.exceptions.ObjectLostError,  # owner died, reconstruction failed, fetch timed out
    ray.exceptions.ObjectStoreFullError,
    ray.exceptions.OutOfDiskError,
    ray.exceptions.OutOfMemoryError,  # Ray's memory monitor killed a worker
    ray.exceptions.RaySystemError,
    ray.exceptions.RpcError,
    ray.exceptions.GetTimeoutError,
    ray.exceptions.TaskUnschedulableError,
    ray.exceptions.ActorUnschedulableError,
    ExecutionTimeoutError,  # Ray Data's no-progress guard and its wait for actors that never start
)


class Stalled(RuntimeError):
    """The job's own watchdog found no progress for ``--stall-timeout`` (``jobs.pipeline.watchdog``)."""


class Retryable(RuntimeError):
    """A failure the job's code knows to be transient (a shard found incomplete when publishing): its work is
    simply done again."""


@dataclass(frozen=True)
class Failure:
    """How a pipeline run failed: whether retrying may help, the cause in one line, and the whole traceback."""

    infrastructure: bool
    cause: str
    detail: str = ""


def classify(exc: BaseException) -> Failure:
    """The ``Failure`` ``exc`` is: infrastructure if it, or any exception it was raised from, is one (Ray wraps a
    task's exception in its own, with the original as ``cause``)."""
    chain = _chain(exc)
    detail = "".join(traceback.format_exception(exc))
    stall = next((e for e in chain if isinstance(e, ExecutionTimeoutError)), None)
    cause = describe_failure(exc) if stall is None else _stall_cause(stall)
    return Failure(infrastructure=any(map(_is_infrastructure, chain)), cause=cause, detail=detail)


def _stall_cause(stall: ExecutionTimeoutError) -> str:
    """Ray Data's no-progress message in one line: how long, and which stages still had tasks running."""
    lines = [line.strip() for line in str(stall).splitlines() if line.strip()]
    running = "; ".join(line.removeprefix("- ") for line in lines if line.startswith("- "))
    return f"stalled: {lines[0] if lines else 'no progress'}" + (f" Waiting on: {running}" if running else "")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions behind it, as its traceback tells them: ``__cause__``, ``__context__`` unless
    ``raise ... from`` replaced it (``from None`` says the error handled is not this one's cause), and Ray's
    ``cause`` (a ``RayTaskError``'s task exception). An error raised plainly while handling a transient one keeps
    it: the handler ran only because the cluster or the store failed, so a retry may not get there again."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        context = None if current.__suppress_context__ else current.__context__
        pending += [current.__cause__, context, _ray_cause(current)]
    return seen


def _ray_cause(exc: BaseException) -> BaseException | None:
    """The task's exception a ``RayTaskError`` wraps, where ``exc`` holds one."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else None


def _is_infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, (*_INFRASTRUCTURE, Stalled, Retryable)) or is_transient(exc)


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of the exception that caused ``exc``.

    A ``RayTaskError`` holds its task's exception as ``cause``: the innermost one that is not Ray's own is told.
    Where none is held (Ray Data's ``UserCodeException`` crosses processes without its ``__cause__``; an
    unpicklable exception comes as text), the first exception line of the traceback text that is not Ray's own
    names it; any other exception is told by its own last line."""
    inner = _innermost(exc)
    if inner is not exc and not isinstance(inner, ray.exceptions.RayError):
        return one_line(inner)
    for line in str(exc).splitlines():
        match = _EXCEPTION_LINE.match(line.strip())
        if match and not match.group(1).startswith("ray."):
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return one_line(exc)


def _innermost(exc: BaseException) -> BaseException:
    """The exception Ray's wrappers around ``exc`` hold: through each one's ``cause``, or ``__cause__``."""
    seen = [exc]
    while isinstance(exc, ray.exceptions.RayError):
        inner = _ray_cause(exc) or exc.__cause__
        if inner is None or any(inner is s for s in seen):
            break
        exc = inner
        seen.append(exc)
    return exc
