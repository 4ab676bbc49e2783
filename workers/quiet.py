"""Import super-gradients without its start-up noise.

Importing super-gradients writes ``~/sg_logs``, installs a crash handler, runs an environment "sanity check"
that warns about packages it never uses, and prints to the console. None of that belongs in a batch job's
terminal or in Ray's worker logs, so every import of super-gradients in this project goes through here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import warnings
from types import ModuleType
from typing import IO, Iterator

_LOCK = threading.Lock()

_QUIET_ENVIRONMENT = {
    "CRASH_HANDLER": "FALSE",
    "UPLOAD_LOGS": "FALSE",
    "CONSOLE_LOG_LEVEL": "ERROR",
    "FILE_LOG_LEVEL": "ERROR",
}


class _Silence:
    """Process-wide redirection of fd 1 and 2, shared by overlapping users (the job imports super-gradients in a
    background thread while Ray starts): the first to enter redirects, the last to leave restores. Per-thread
    save/restore would let one thread restore the other's redirection and lose the console for good."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: tuple[int, int] = (-1, -1)
        self.sink: IO[bytes] | None = None

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                sys.stdout.flush()
                sys.stderr.flush()
                self.saved = os.dup(1), os.dup(2)
                self.sink = tempfile.TemporaryFile(mode="w+b")
                os.dup2(self.sink.fileno(), 1)
                os.dup2(self.sink.fileno(), 2)
            self.depth += 1

    def leave(self, replay: bool) -> None:
        """``replay``: the body failed, so what was held back goes to the real stderr (it explains the failure)."""
        with self.lock:
            sys.stdout.flush()
            sys.stderr.flush()
            if replay and self.sink is not None:
                self.sink.seek(0)
                os.write(self.saved[1], self.sink.read())
                self.sink.seek(0, os.SEEK_END)
            self.depth -= 1
            if self.depth == 0:
                os.dup2(self.saved[0], 1)
                os.dup2(self.saved[1], 2)
                os.close(self.saved[0])
                os.close(self.saved[1])
                if self.sink is not None:
                    self.sink.close()
                self.sink = None


_SILENCE = _Silence()


@contextlib.contextmanager
def silenced_output() -> Iterator[None]:
    """Send fd 1 and 2 (C++ libraries write there too) to a temporary file; replay it only if the body raises."""
    _SILENCE.enter()
    try:
        yield
    except BaseException:
        _SILENCE.leave(replay=True)
        raise
    else:
        _SILENCE.leave(replay=False)


def super_gradients_models() -> ModuleType:
    """Return ``super_gradients.training.models``, imported quietly once per process."""
    with _LOCK:
        already = "super_gradients.training.models" in sys.modules
        if not already:
            for key, value in _QUIET_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
            os.environ.setdefault(
                "SUPER_GRADIENTS_LOG_DIR", os.path.join(tempfile.gettempdir(), "yolonas-batch-sg-logs")
            )
            with warnings.catch_warnings(), silenced_output():
                warnings.simplefilter("ignore")
                from super_gradients.training import models  # noqa: F401
            _mute_super_gradients_loggers()
        from super_gradients.training import models

        return models


def _mute_super_gradients_loggers() -> None:
    """super-gradients attaches console handlers to its own loggers; keep only errors from them."""
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("super_gradients"):
            logging.getLogger(name).setLevel(logging.ERROR)
