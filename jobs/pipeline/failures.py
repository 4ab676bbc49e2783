"""A failed pipeline run told in one line: the root cause, not Ray's wrappers around it."""

from __future__ import annotations

import re

from workers.errors import one_line

_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$")


def describe_failure(exc: BaseException) -> str:
    """``Type: message`` of the exception that caused ``exc``.

    Ray re-raises a worker's failure with the original traceback as text, so the first exception line of that
    text that is not Ray's own names the cause; any other exception is told by its own last line."""
    for line in str(exc).splitlines():
        match = _EXCEPTION_LINE.match(line.strip())
        if match and not match.group(1).startswith("ray."):
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return one_line(exc)
