"""The driver's watchdog on its own (no Ray): a progress line every interval while nothing finishes, and the
watched thread interrupted once the stall outlasts the timeout, or at once when the output's lease is lost."""

from __future__ import annotations

import io
import signal
import threading
import time

import pytest

from common.progress import Progress
from jobs.pipeline.watchdog import Fired, Watchdog

INTERRUPTED_S = 5
"""A wait the watchdog ends long before: a test that waits it out has failed (``Fired`` was not raised)."""


def _progress() -> Progress:
    return Progress(total=10, stream=io.StringIO(), every_s=0.1)


def test_while_nothing_finishes_a_line_says_for_how_long_and_what_the_run_waits_for():
    progress = _progress()
    with Watchdog(progress, timeout_s=60, waiting=lambda: "3 shard(s) with rows in flight"):
        time.sleep(0.5)
    lines = progress.stream.getvalue().splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("progress: 0/10 frames") for line in lines)
    assert lines[-1].endswith("s; waiting for 3 shard(s) with rows in flight") and "no progress for " in lines[-1]


def test_progress_keeps_it_quiet():
    progress = _progress()
    with Watchdog(progress, timeout_s=60, waiting=lambda: "x"):
        for _ in range(10):
            progress.touch()
            time.sleep(0.04)
    assert "no progress" not in progress.stream.getvalue()


def test_a_stall_past_the_timeout_interrupts_the_main_thread_and_says_why():
    progress = _progress()
    watchdog = Watchdog(progress, timeout_s=0.2, waiting=lambda: "shards 00003", margin_s=0.2)
    with pytest.raises(Fired), watchdog:
        time.sleep(INTERRUPTED_S)
    assert watchdog.fired is not None
    assert watchdog.fired.startswith("no progress for ") and watchdog.fired.endswith("waiting for shards 00003")


def test_a_lost_lease_interrupts_at_once():
    progress = _progress()
    watchdog = Watchdog(progress, timeout_s=60, waiting=lambda: "x", lost=lambda: "taken over by run B")
    started = time.monotonic()
    with pytest.raises(Fired), watchdog:
        time.sleep(INTERRUPTED_S)
    assert time.monotonic() - started < 2
    assert watchdog.fired == "the output's lease was lost: taken over by run B"


def test_a_job_run_in_another_thread_is_interrupted_in_that_thread():
    progress = _progress()
    outcome = {}

    def job() -> None:
        watchdog = Watchdog(progress, timeout_s=0.2, waiting=lambda: "x", margin_s=0.2)
        try:
            with watchdog:
                for _ in range(100):
                    time.sleep(0.05)
        except Fired:
            outcome["fired"] = watchdog.fired

    thread = threading.Thread(target=job)
    thread.start()
    thread.join(timeout=10)
    assert outcome["fired"].startswith("no progress for ")


def test_it_works_where_sigint_is_ignored_and_leaves_sigint_alone():
    """A job started in the background ignores SIGINT from its start; the watchdog does not rely on it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        watchdog = Watchdog(_progress(), timeout_s=0.2, waiting=lambda: "x", margin_s=0.2)
        with pytest.raises(Fired), watchdog:
            time.sleep(INTERRUPTED_S)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
