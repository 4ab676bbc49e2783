"""Stopping a run in order on SIGTERM, SIGINT or SIGHUP: what Kubernetes (eviction, preemption, a deadline),
``ray job stop``, systemd, Ctrl-C and a closed terminal send.

On the first of them a run starts no new work, lets the tasks publishing its work finish within ``--stop-grace``,
cancels those still running and waits (at most ``CANCEL_WAIT_S``) for them to end, records the attempt as
``interrupted`` and exits with 128 plus the signal's number (``common.errors``): a scheduler tells a stop from a
failure, and the same command resumes the run. A second signal, any of the three, during that stop ends the
process at once with the first one's code and one line, as a user pressing Ctrl-C twice means (the output's lease
is then left to expire, as a killed run's is).

The handlers are Python's: they run in the main thread, between bytecodes and inside Ray's blocking calls, which
check for signals. They interrupt only inside ``StopSignals.raising()`` (which raises ``Stopped``), around waits
that can be left with nothing half done (listing and planning, starting Ray, the Ray Data iterator, a retry's
backoff); elsewhere a signal is noted and the next such wait raises at once, so that no receipt is half handled
and no task half submitted. ``Stopped`` is a ``BaseException``, so no ``except Exception`` on the way takes it for a
failure.

``ray.init`` takes SIGTERM over twice (found by experiment, Ray 2.60: a handler installed before it was no longer
called after it): in Python, with a handler that calls ``sys.exit``, and natively when the driver's core worker
starts, with Ray's failure-signal handler, which prints ``*** SIGTERM received at time=…`` and a stack dump and
aborts the process (exit 134, nothing recorded). So the handlers are installed again as soon as ``ray.init``
returns (``through_ray_init``), and a SIGTERM that met Ray's Python handler during ``ray.init`` is taken for the
stop it was.

A signal ignored when the run starts stays ignored: ``nohup`` ignores SIGHUP and a shell starts background jobs
ignoring SIGINT, so that closing the terminal, or a Ctrl-C meant for the foreground, leaves them running. A run in
another thread than the main one (``run_job`` called from Python code) installs nothing: Python delivers signals to
the main thread only.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Callable

from common.errors import EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM

EXIT_CODES = {signal.SIGTERM: EXIT_SIGTERM, signal.SIGINT: EXIT_SIGINT, signal.SIGHUP: EXIT_SIGHUP}
"""The signals a run stops on, and the exit code of a run each stopped."""
CANCEL_WAIT_S = 5.0
"""How long a stopped run waits for Ray to report the tasks it cancelled (their processes killed) as ended, before it
cleans up after them: a few seconds at most, so that the grace plus this stays under Kubernetes' 30 s."""

_active: StopSignals | None = None
"""The handlers installed now, which ``through_ray_init`` puts back after ``ray.init``."""


class Stopped(BaseException):
    """Raised in the main thread when a stop signal arrives inside ``StopSignals.raising()``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[signal.Signals(self.signum)]

    def line(self, prog: str) -> str:
        """What the command says of a stop that came before the run recorded anything."""
        return f"{prog}: stopped by {self.name} before the run started; nothing recorded (exit {self.exit_code})"


def exit_code(signal_name: str) -> int:
    """The exit code of a run stopped by the signal named ``signal_name`` (``SIGTERM``)."""
    return EXIT_CODES[signal.Signals[signal_name]]


class StopSignals:
    """The stop signals' handlers while a run lasts (a context manager; the previous handlers are put back at its
    end). ``received`` is the first signal that came; ``grace_s`` how long the run waits for its work in flight.
    ``exit`` ends the process on a second signal (``os._exit``: no cleanup, no traceback)."""

    def __init__(self, command: str, grace_s: float, stream: Any = None, exit: Callable[[int], Any] = os._exit) -> None:
        self.command = command
        self.grace_s = grace_s
        self.received: int | None = None
        self._stream = stream
        self._exit = exit
        self._raising = 0
        self._previous: dict[int, Any] = {}
        self._outer: StopSignals | None = None

    @property
    def stopped_by(self) -> str | None:
        """The name of the signal that stopped the run (``SIGTERM``), or None."""
        return None if self.received is None else signal.Signals(self.received).name

    def __enter__(self) -> StopSignals:
        global _active
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:
                    self._previous[signum] = previous
            self.reinstall()
            self._outer, _active = _active, self
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        global _active
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        if _active is self:
            _active = self._outer

    def reinstall(self) -> None:
        """Install the handlers (again: ``ray.init`` replaces SIGTERM's); only the main thread may."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self._previous:
            signal.signal(signum, self._handle)

    @contextmanager
    def raising(self) -> Iterator[None]:
        """A stop signal raises ``Stopped`` in this block; a stop that came before it raises at its start.

        The handler raises ``KeyboardInterrupt`` here, turned into ``Stopped`` as it leaves the block: it is the one
        exception that ends a wait in Ray's core (``ray.wait``, ``ray.get``) at once. Ray runs a signal's handler
        while it waits, but any other exception stays pending until the wait times out (found by experiment, Ray
        2.60: a ``ray.wait`` with a 60 s timeout raised it after 60 s, as a ``SystemError``), and a second signal
        meanwhile is not handled at all."""
        self._raising += 1
        try:
            if self.received is not None:
                raise Stopped(self.received)
            yield
        except KeyboardInterrupt:
            if self.received is None:  # not one of this handler's: a Ctrl-C it did not catch
                raise
            raise Stopped(self.received) from None
        finally:
            self._raising -= 1

    def sleep(self, seconds: float) -> None:
        """``time.sleep``, ended by a stop signal (``Stopped``)."""
        with self.raising():
            time.sleep(seconds)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            code = EXIT_CODES[signal.Signals(self.received)]
            self._say(f"{self.command}: {name} while stopping: exiting at once (exit {code}), the lease left to expire")
            self._exit(code)
            return
        self.received = signum
        self._say(
            f"{self.command}: {name}: stopping: no new work, up to {self.grace_s:g} s for work being committed "
            "(another signal exits at once)"
        )
        if self._raising:
            raise KeyboardInterrupt()  # which ``raising`` turns into ``Stopped``

    def _say(self, line: str) -> None:
        print(line, file=self._stream or sys.stderr, flush=True)


NEVER = StopSignals("run", 0.0)
"""Stop handlers never installed, for parts run without them (benchmarks, tests of one part): never stopped."""


@contextmanager
def through_ray_init() -> Iterator[None]:
    """Around ``ray.init``: the stop handlers installed again after it, and a SIGTERM that Ray's own handler turned
    into ``SystemExit`` during it taken for a stop (``Stopped``, or the exit of a second signal)."""
    stop = _active
    try:
        yield
    except SystemExit as exc:
        if stop is None or exc.code != signal.SIGTERM:
            raise
        stop._handle(signal.SIGTERM, None)
        raise Stopped(signal.SIGTERM) from None
    finally:
        if stop is not None:
            stop.reinstall()


def end_tasks(refs: list[Any], grace_s: float, cancel_wait_s: float = CANCEL_WAIT_S) -> tuple[list[Any], list[Any]]:
    """Wait up to ``grace_s`` for the Ray tasks of ``refs`` to end, then cancel those still running and wait up to
    ``cancel_wait_s`` for Ray to report them ended. Cancelled with ``force``: their worker processes are killed, so
    none writes anything after the run has cleaned up. Returns (the refs that ended in the grace, those cancelled)."""
    import ray

    if not refs:
        return [], []
    ended, running = ray.wait(refs, num_returns=len(refs), timeout=grace_s, fetch_local=False)
    for ref in running:
        ray.cancel(ref, force=True)
    if running:
        ray.wait(running, num_returns=len(running), timeout=cancel_wait_s, fetch_local=False)
    return ended, running
