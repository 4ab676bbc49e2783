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

_LOCK = threading.Lock()

_QUIET_ENVIRONMENT = {
    "CRASH_HANDLER": "FALSE",
    "UPLOAD_LOGS": "FALSE",
    "CONSOLE_LOG_LEVEL": "ERROR",
    "FILE_LOG_LEVEL": "ERROR",
}


@contextlib.contextmanager
def silenced_output() -> "contextlib.Generator[None, None, None]":
    """Send fd 1 and 2 (C++ libraries write there too) to a temporary file; replay it only if the body raises."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def super_gradients_models() -> ModuleType:
    """Return ``super_gradients.training.models``, imported quietly once per process."""
    with _LOCK:
        already = "super_gradients.training.models" in sys.modules
        if not already:
            for key, value in _QUIET_ENVIRONMENT.items():
                os.environ.setdefault(key, value)
            os.environ.setdefault("SUPER_GRADIENTS_LOG_DIR", os.path.join(tempfile.gettempdir(), "yolonas-batch-sg-logs"))
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
