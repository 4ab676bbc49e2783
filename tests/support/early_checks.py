"""Checks that need only the source tree, started at low priority as soon as the tests are collected and collected
by their test later: mypy's full check is half a minute of CPU with no cache (CI's case), which the whole-job tests,
waiting on their processes much of the time, leave room for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

_started: dict[tuple[str, ...], subprocess.Popen[str]] = {}


def start(command: tuple[str, ...]) -> None:
    """Start ``command`` (a tool in this environment, and its arguments) in the background, niced."""
    if command not in _started:
        _started[command] = subprocess.Popen(
            [str(BIN / command[0]), *command[1:]],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=lambda: os.nice(10),
        )


def result(command: tuple[str, ...]) -> tuple[int, str]:
    """The exit code and output of ``command``, started early or now."""
    start(command)
    process = _started.pop(command)
    output, _ = process.communicate()
    return process.returncode, output


def stop_all() -> None:
    """End what was started and never collected (a run cut short, or ``-k`` leaving the test out)."""
    for process in _started.values():
        process.kill()
        process.wait()
    _started.clear()
