"""A poison input for the job's tests: the model stage fails on any batch that holds it, every time.

Tests put ``FailingDetectStage`` in place of ``jobs.pipeline.DetectStage`` (``monkeypatch.setattr``) on the
driver; Ray pickles the class by reference, so the model actors import it from here. A batch holding an input
whose file name contains ``POISON`` fails its pipeline run.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pyarrow as pa

from jobs.pipeline.detect_stage import DetectStage

POISON = "poison"


def _poisoned(batch: dict[str, np.ndarray]) -> str | None:
    """The name of the first poisoned input in the batch (the file name only: test folders are named after the
    test, which may say "poison" too)."""
    names = (uri.rsplit("/", 1)[-1] for uri in batch["source_uri"].tolist())
    return next((name for name in names if POISON in name), None)


class FailingDetectStage(DetectStage):
    """Raises, as the model stage would on a fault that is not the input's own error row (the actor lives on)."""

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        name = _poisoned(batch)
        if name is not None:
            raise RuntimeError(f"model stage crashed on {name}")
        return super().__call__(batch)


class _TextOnly(logging.Filter):
    """Turns a record's arguments and exception into text as it is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        if record.args:
            record.msg, record.args = record.getMessage(), None
        return True


@contextmanager
def log_records_keep_no_exceptions() -> Iterator[None]:
    """While a failed pipeline run is retried under pytest, keep the failure's exception out of captured log records.

    pytest's log capture (its handlers are on Ray's loggers too) keeps every record of a test until the test ends,
    and Ray Data logs a failed run with the exception as an argument. Through its traceback the exception holds the
    failed run's executor and so its model actors, which then never end; on a 2-CPU Ray the lingering actor holds
    the CPU the next run's decode tasks need, and the retry waits forever. The job's own logging keeps no records.
    """
    handlers = {h for name in ("", "ray", "ray.data") for h in logging.getLogger(name).handlers}
    text_only = _TextOnly()
    for handler in handlers:
        handler.addFilter(text_only)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(text_only)
