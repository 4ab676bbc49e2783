"""Errors as one line: how an error row, a manifest and the console all tell a failure."""

from __future__ import annotations

from typing import Literal


def one_line(exc: BaseException, keep: Literal["first", "last"] = "last") -> str:
    """``Type: message`` on one line. Of a message of several lines one is kept: the last by default, where OpenCV,
    FFmpeg and tracebacks put the cause after their context; the first for libraries that state the cause first and
    explain after it (``torch.load``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{type(exc).__name__}: {lines[-1] if keep == 'last' else lines[0]}"
