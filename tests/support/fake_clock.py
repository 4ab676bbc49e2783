"""A clock whose time passes only when a test says so, to drive the run lease without waiting."""

from __future__ import annotations

import threading

WAKE_POLL_S = 0.005
"""How often a ``wait`` looks at its event: setting an event wakes no condition of this clock."""


class FakeClock:
    """``advance`` moves wall and monotonic time together and wakes what waits on them; ``sleep`` lets time pass
    at once, the sleeper being the one who waits. ``waits`` counts the ``wait`` calls begun, so that a test can
    tell when a thread (the lease's heartbeat) has parked again."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self._now = now
        self._monotonic = 1_000.0
        self._changed = threading.Condition()
        self.waits = 0
        self.slept: list[float] = []
        """Every ``sleep``'s seconds, in order: how many waits a retry loop made between its tries."""

    def now(self) -> float:
        with self._changed:
            return self._now

    def monotonic(self) -> float:
        with self._changed:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._changed:
            self._now += seconds
            self._monotonic += seconds
            self._changed.notify_all()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        with self._changed:
            deadline = self._monotonic + seconds
            self.waits += 1
            self._changed.notify_all()
            while not event.is_set() and self._monotonic < deadline:
                self._changed.wait(WAKE_POLL_S)
            return event.is_set()

    def until_waits(self, count: int, timeout_s: float = 10.0) -> None:
        """Return once ``wait`` has been called ``count`` times; the timeout only guards against a hang."""
        with self._changed:
            if not self._changed.wait_for(lambda: self.waits >= count, timeout_s):
                raise AssertionError(f"{self.waits} waits began, not {count}")
