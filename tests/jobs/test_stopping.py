"""The stop signals' handlers on their own, in this process's main thread, with real signals (``raise_signal`` runs
the handler before it returns) and the process's exit replaced by a recorder; the whole job stopped by a signal is
in ``test_stop_job.py``."""

from __future__ import annotations

import io
import signal
import threading
from collections.abc import Iterator

import pytest

from common.errors import EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM
from jobs.stopping import Stopped, StopSignals, exit_code, through_ray_init


class _Exited(Exception):
    """What the recorder raises in place of ``os._exit``, so the test goes on after a second signal."""


@pytest.fixture
def exits() -> list[int]:
    return []


@pytest.fixture
def stop(exits: list[int]) -> Iterator[StopSignals]:
    """Installed over the signals' default handling, as a run started from a terminal finds it: a suite started under
    ``nohup`` ignores SIGHUP, and one started in the background (``&``) SIGINT, which the handlers would rightly
    leave ignored."""

    def record(code: int) -> None:
        exits.append(code)
        raise _Exited()

    defaults = {signal.SIGHUP: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    before = {signum: signal.signal(signum, handler) for signum, handler in defaults.items()}
    try:
        with StopSignals("detect", 7.0, stream=io.StringIO(), exit=record) as installed:
            yield installed
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def _said(stop: StopSignals) -> list[str]:
    return stop._stream.getvalue().splitlines()  # type: ignore[union-attr]


def test_the_exit_codes_are_128_plus_the_signal_number():
    assert (EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM) == (128 + 1, 128 + 2, 128 + 15)
    assert [exit_code(name) for name in ("SIGHUP", "SIGINT", "SIGTERM")] == [129, 130, 143]
    assert Stopped(signal.SIGINT).exit_code == 130 and Stopped(signal.SIGINT).name == "SIGINT"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_inside_a_raising_block_raises_stopped_and_says_so_in_one_line(stop, signum):
    with pytest.raises(Stopped) as stopped, stop.raising():
        signal.raise_signal(signum)
        pytest.fail("the handler raises before raise_signal returns")
    assert stopped.value.signum == signum
    assert stop.stopped_by == signum.name
    assert _said(stop) == [
        f"detect: {signum.name}: stopping: no new work, up to 7 s for work being committed (another signal exits at "
        "once)"
    ]


def test_a_signal_outside_a_raising_block_is_noted_and_raised_by_the_next_one(stop):
    signal.raise_signal(signal.SIGTERM)  # a receipt being handled: not interrupted
    assert stop.received == signal.SIGTERM
    with pytest.raises(Stopped), stop.raising():
        pytest.fail("a block entered after the stop does not run")
    with pytest.raises(Stopped):
        stop.sleep(3600)  # the stop already received ends it before it waits at all


def test_a_second_signal_of_any_kind_exits_at_once_with_the_first_ones_code(stop, exits):
    signal.raise_signal(signal.SIGTERM)
    with pytest.raises(_Exited):
        signal.raise_signal(signal.SIGINT)
    assert exits == [EXIT_SIGTERM]
    assert _said(stop)[-1] == "detect: SIGINT while stopping: exiting at once (exit 143), the lease left to expire"


def test_a_sleep_is_ended_by_a_signal_from_another_thread(stop):
    """The retry's backoff: a signal sent while it waits (or just before) ends it."""
    sender = threading.Thread(target=signal.pthread_kill, args=(threading.main_thread().ident, signal.SIGHUP))
    with pytest.raises(Stopped) as stopped:
        sender.start()
        stop.sleep(3600)  # ended by the sender's signal; the test's timeout fails it if not
    sender.join()
    assert stopped.value.signum == signal.SIGHUP


def test_the_previous_handlers_come_back_and_an_ignored_signal_stays_ignored():
    def before(signum, frame):
        pass

    previous = {s: signal.signal(s, before) for s in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with StopSignals("track", 1.0) as stop:
            assert signal.getsignal(signal.SIGTERM) == stop._handle
            assert signal.getsignal(signal.SIGINT) == stop._handle
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is before and signal.getsignal(signal.SIGINT) is before
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_run_in_another_thread_installs_nothing():
    seen = {}

    def run() -> None:
        with StopSignals("detect", 1.0) as stop, stop.raising():
            seen["handler"] = signal.getsignal(signal.SIGTERM)
            seen["stop"] = stop

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen["handler"] is before and seen["stop"].received is None


def test_handlers_come_back_after_ray_init_takes_sigterm_over(stop):
    """What ``ray.init`` does to SIGTERM (a Python handler of its own, then a native one), replayed in Python."""
    with through_ray_init():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    assert signal.getsignal(signal.SIGTERM) == stop._handle


def test_a_sigterm_that_rays_own_handler_met_during_ray_init_is_a_stop(stop):
    """Ray's Python handler calls ``sys.exit(signum)``: taken for the SIGTERM it was."""
    with pytest.raises(Stopped) as stopped, through_ray_init():
        raise SystemExit(signal.SIGTERM)
    assert stopped.value.signum == signal.SIGTERM and stop.received == signal.SIGTERM
    with pytest.raises(SystemExit), through_ray_init():  # any other exit is left alone
        raise SystemExit(3)


def test_inside_a_block_the_handler_raises_what_ends_a_wait_in_ray_and_the_block_gives_stopped(stop):
    """``KeyboardInterrupt`` is the one exception Ray's ``ray.wait`` and ``ray.get`` end their wait on at once (the
    whole job meets the real one: ``tests/jobs/tracking/test_runner.py``, ``test_stop_job.py``)."""
    raised = []
    with pytest.raises(Stopped) as stopped, stop.raising():
        try:
            signal.raise_signal(signal.SIGTERM)
        except BaseException as exc:
            raised.append(type(exc))
            raise
    assert raised == [KeyboardInterrupt] and stopped.value.signum == signal.SIGTERM
    assert stopped.value.__cause__ is None and stopped.value.__suppress_context__
    with pytest.raises(KeyboardInterrupt), StopSignals("detect", 1.0).raising():  # not a stop: left alone
        raise KeyboardInterrupt()
