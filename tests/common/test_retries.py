"""Retries: by attempts (``retrying``) and within a deadline (``retrying_until``), the latter on a fake clock, so
that no test waits for a backoff."""

from __future__ import annotations

from typing import Callable

import pytest

from common.retries import Deadline, retrying, retrying_until
from tests.support.fake_clock import FakeClock


class CountingClock(FakeClock):
    """A fake clock that records when each try starts and ends (``tried``), a try taking ``try_takes_s``."""

    def __init__(self, try_takes_s: float = 0.0) -> None:
        super().__init__()
        self.try_takes_s = try_takes_s
        self.tried: list[tuple[float, float]] = []

    def failing(self, error: Callable[[int], BaseException]) -> Callable[[], None]:
        """A try that takes its time, then fails with ``error(n)``, ``n`` counting the tries from 1."""

        def once() -> None:
            started = self.monotonic()
            self.advance(self.try_takes_s)
            self.tried.append((started, self.monotonic()))
            raise error(len(self.tried))

        return once


def test_a_transient_error_is_retried_until_no_whole_try_fits_and_the_last_error_propagates():
    clock = CountingClock()
    start = clock.monotonic()
    deadline = Deadline(9.0, clock)  # a try may take 3 s
    with pytest.raises(ConnectionResetError) as caught:
        retrying_until(clock.failing(lambda n: ConnectionResetError(f"try {n}")), deadline)
    assert len(clock.tried) > 2
    assert str(caught.value) == f"try {len(clock.tried)}"  # the last error, not the first
    assert all(started + deadline.try_s <= start + deadline.seconds for started, _ in clock.tried)
    assert clock.tried[-1][0] == pytest.approx(start + 6.0)  # the last wait cut so that one more whole try fits


def test_no_retry_starts_that_could_not_end_by_the_deadline():
    clock = CountingClock(try_takes_s=2.5)  # tries that hang almost to their bound
    start = clock.monotonic()
    with pytest.raises(TimeoutError):
        retrying_until(clock.failing(lambda _: TimeoutError("read timeout")), Deadline(9.0, clock))
    assert len(clock.tried) == 3  # at 0, about 2.5 and about 5 s: a fourth would end past 9 s
    assert clock.tried[-1][1] <= start + 9.0
    assert clock.monotonic() <= start + 9.0  # given up by the deadline, with no wait past it


def test_a_try_that_succeeds_ends_the_retries():
    clock = CountingClock()
    fail = clock.failing(lambda _: ConnectionResetError("reset"))

    def twice_then_ok() -> str:
        if len(clock.tried) < 2:
            fail()
        return "ok"

    assert retrying_until(twice_then_ok, Deadline(60.0, clock)) == "ok" and len(clock.tried) == 2


@pytest.mark.parametrize("error", [FileNotFoundError("gone"), PermissionError("denied"), ValueError("a bug")])
def test_a_permanent_error_is_not_retried(error: Exception):
    clock = CountingClock()
    start = clock.monotonic()
    with pytest.raises(type(error)):
        retrying_until(clock.failing(lambda _: error), Deadline(60.0, clock))
    assert len(clock.tried) == 1 and clock.monotonic() == start


def test_tries_under_a_deadline_are_single_requests_bounded_by_a_third_of_it():
    config = Deadline(60.0).client_config()
    assert config["retries"] == {"mode": "standard", "total_max_attempts": 1}
    assert config["connect_timeout"] + config["read_timeout"] == pytest.approx(20.0)


def test_retrying_retries_transient_errors_only():
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert retrying(flaky, attempts=3, base_delay=0.001) == "ok" and len(calls) == 3

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("gone")

    calls.clear()
    with pytest.raises(FileNotFoundError):
        retrying(missing, attempts=5, base_delay=0.001)
    assert len(calls) == 1

    calls.clear()
    with pytest.raises(ConnectionResetError):
        retrying(lambda: flaky() and None, attempts=2, base_delay=0.001)
    assert len(calls) == 2
