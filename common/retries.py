"""How storage operations are retried: which errors are worth another try, and the two ways of trying again.

``retrying`` bounds an operation by a number of attempts, on top of the per-request retries of botocore and s3fs:
right for reads, whose lateness harms nothing. A write the output's lease guards must instead land within a known
time or not at all, since a write that lands after the lease could have passed to another run is one that run
never expected. So those go through ``retrying_until`` alone, under a ``Deadline``: their requests are tried once
each by the client (``SINGLE_TRY``), each try is bounded (``Deadline.try_s``), and no try starts that could not
end before the deadline.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

import aiohttp
import botocore.exceptions
from huggingface_hub.errors import OfflineModeIsEnabled

T = TypeVar("T")

READ_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 0.2
TRIES_PER_DEADLINE = 3
"""A try is allowed a third of its deadline, so that after one that hung to its timeout another still fits."""
SINGLE_TRY: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 1}}
"""botocore ``Config`` options for one attempt per request (``max_attempts`` would count retries after it)."""

_PERMANENT_ERRORS = (
    FileNotFoundError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    FileExistsError,
    OfflineModeIsEnabled,  # a ConnectionError, but HF_HUB_OFFLINE says no request will be made, however often asked
)
_TRANSIENT_ERRORS = (
    OSError,  # includes ConnectionError and TimeoutError (so asyncio's and fsspec's timeouts)
    botocore.exceptions.HTTPClientError,  # connection closed, read timeout, broken response stream
    botocore.exceptions.ConnectionError,  # endpoint unreachable, connect timeout
    botocore.exceptions.IncompleteReadError,
    aiohttp.ClientError,  # payload errors aiobotocore lets through
)


def is_transient(error: BaseException) -> bool:
    """Whether trying the same operation again may succeed: I/O and connection errors, not a missing object,
    a denied request or a path of the wrong type."""
    return isinstance(error, _TRANSIENT_ERRORS) and not isinstance(error, _PERMANENT_ERRORS)


def retrying(fn: Callable[[], T], attempts: int = READ_ATTEMPTS, base_delay: float = RETRY_BASE_DELAY_S) -> T:
    """``fn()``, called again after a transient error, at most ``attempts`` times in all.

    Waits are exponential with full jitter (uniform in ``[0, base_delay * 2**n]``) so that many workers hit by
    the same outage do not retry in step. Any other error, and the last transient one, propagates unchanged.
    """
    for attempt in range(attempts - 1):
        try:
            return fn()
        except _TRANSIENT_ERRORS as error:
            if not is_transient(error):
                raise
            time.sleep(random.uniform(0.0, base_delay * 2**attempt))
    return fn()


class Timer(Protocol):
    """What a deadline reads and waits with (``jobs.records.clock.Clock`` is one): injected, so that tests of
    retries never wait real seconds."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemTimer:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_TIMER: Timer = _SystemTimer()


@dataclass(frozen=True)
class Deadline:
    """At most ``seconds`` for one operation, its retries and waits included, timed by ``clock``."""

    seconds: float
    clock: Timer = SYSTEM_TIMER

    @property
    def try_s(self) -> float:
        """The most one try may take: its client's timeouts (``client_config``) add up to it."""
        return self.seconds / TRIES_PER_DEADLINE

    def client_config(self) -> dict[str, Any]:
        """botocore ``Config`` options for tries under this deadline: one attempt per request, a quarter of the
        try to connect and the rest to wait for an answer."""
        return {**SINGLE_TRY, "connect_timeout": self.try_s / 4, "read_timeout": self.try_s * 3 / 4}


def retrying_until(fn: Callable[[], T], deadline: Deadline, base_delay: float = RETRY_BASE_DELAY_S) -> T:
    """``fn()``, called again after a transient error while a new try can still end before ``deadline``.

    ``fn`` must make one try of at most ``deadline.try_s``. Before each retry its wait (exponential with full
    jitter, as ``retrying``'s) is cut to what the deadline leaves over a whole try; where no time is left
    over a whole try, the last error propagates. Any other error propagates at once.
    """
    clock = deadline.clock
    end = clock.monotonic() + deadline.seconds
    attempt = 0
    while True:
        try:
            return fn()
        except _TRANSIENT_ERRORS as error:
            spare = end - clock.monotonic() - deadline.try_s
            if not is_transient(error) or spare <= 0:
                raise
            clock.sleep(min(random.uniform(0.0, base_delay * 2**attempt), spare))
            attempt += 1
