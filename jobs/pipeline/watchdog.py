"""The driver's watch over a pipeline run: a progress line every interval, even while nothing finishes, and an end
to a run that stops making progress, so a job run from cron never waits in silence.

Ray Data's own no-progress guard (``jobs.pipeline.dataset.limit_stalls``) ends a run whose stages stop moving
blocks, with the same timeout. The watchdog covers what that guard cannot see, the driver's own waits (a publish
task that never returns is one, ``jobs.commit.publish``), and a guard that did not fire: past the timeout and a
margin it interrupts the driver's main thread, which ends the run as a stall.
"""

from __future__ import annotations

import ctypes
import signal
import threading
from types import TracebackType
from typing import Any, Callable

from common.progress import Progress

MARGIN_S = 30.0
"""How long past the timeout the watchdog waits for Ray Data's guard (or a publish wait) to end the run itself."""


SIGNAL = signal.SIGUSR2
"""How the watchdog interrupts a wait in the main thread. Not SIGINT: a process started in the background (``&``,
``nohup``) ignores SIGINT from its start, and a user's Ctrl-C must stay a user's Ctrl-C."""


class Fired(BaseException):
    """Raised in the watched thread when the watchdog ends its run: a ``BaseException``, so no ``except Exception``
    on the way takes it for a failure of its own."""


class Watchdog:
    """Watches ``progress`` while a pipeline run lasts (a context manager): prints a line every
    ``progress.every_s`` when there was none, and raises ``Fired`` in the thread that entered it (``fired`` tells
    why) after ``timeout_s`` + ``margin_s`` without progress, or as soon as ``lost()`` says the output's lease is
    lost."""

    def __init__(
        self,
        progress: Progress,
        timeout_s: float,
        waiting: Callable[[], str],
        lost: Callable[[], str | None] = lambda: None,
        margin_s: float = MARGIN_S,
    ) -> None:
        self.progress = progress
        self.timeout_s = timeout_s
        self.margin_s = margin_s
        self.waiting = waiting
        self.lost = lost
        self.fired: str | None = None
        self._watched = threading.main_thread().ident or 0
        self._previous: Any = signal.SIG_DFL
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._watched = threading.get_ident()
        if self._in_main_thread():
            self._previous = signal.signal(SIGNAL, _raise_fired)
        self.progress.touch()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        if self._in_main_thread():
            signal.signal(SIGNAL, self._previous)

    def _in_main_thread(self) -> bool:
        return self._watched == threading.main_thread().ident

    def _watch(self) -> None:
        every = min(self.progress.every_s, self.timeout_s / 4)
        while not self._stop.wait(every):
            if (lost := self.lost()) is not None:
                self._fire(f"the output's lease was lost: {lost}")
                return
            idle = self.progress.idle_s
            if idle >= every:
                self.progress.note(f"no progress for {idle:.0f} s; waiting for {self.waiting()}")
            if idle >= self.timeout_s + self.margin_s:
                self._fire(f"no progress for {idle:.0f} s; waiting for {self.waiting()}")
                return

    def _fire(self, why: str) -> None:
        """``Fired`` in the watched thread. The main thread (the job's, run from the command line) gets a real
        signal, which also ends a blocking wait; another thread (a job run from Python code) gets the exception as
        soon as it runs Python code again."""
        self.fired = why
        if self._in_main_thread():
            signal.pthread_kill(self._watched, SIGNAL)
        else:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._watched), ctypes.py_object(Fired))


def _raise_fired(signum: int, frame: object) -> None:
    raise Fired()
