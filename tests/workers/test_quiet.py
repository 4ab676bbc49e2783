"""workers/quiet.py: the console is held back while silenced and always comes back, also when silences overlap."""

from __future__ import annotations

import os
import threading

import pytest

from workers.quiet import silenced_output


def _stderr_file() -> tuple[int, int]:
    info = os.fstat(2)
    return info.st_dev, info.st_ino


def test_overlapping_silences_from_two_threads_restore_the_console():
    """The job silences Ray's start in the main thread while a background thread imports super-gradients:
    the thread that leaves first must not restore the console under the other, nor the other's sink after."""
    console = _stderr_file()
    entered, release = threading.Event(), threading.Event()

    def background() -> None:
        with silenced_output():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=background)
    thread.start()
    assert entered.wait(10)
    with silenced_output():
        release.set()
        thread.join(10)
        assert _stderr_file() != console, "the other thread's exit un-silenced this one"
    assert _stderr_file() == console


def test_output_is_held_back_and_replayed_only_on_failure(capfd):
    with silenced_output():
        os.write(2, b"noise from a library\n")
    assert "noise" not in capfd.readouterr().err
    with pytest.raises(RuntimeError), silenced_output():
        os.write(2, b"why it failed\n")
        raise RuntimeError("boom")
    assert "why it failed" in capfd.readouterr().err
