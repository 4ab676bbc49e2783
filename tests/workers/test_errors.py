"""workers/errors.py: every error message the job writes is one line with the exception's type."""

from __future__ import annotations

from workers.errors import one_line


def test_one_line_keeps_the_last_line_by_default():
    assert one_line(ValueError("context\n\n  the cause  \n")) == "ValueError: the cause"


def test_one_line_can_keep_the_first_line():
    assert one_line(OSError("the cause\nexplanation"), keep="first") == "OSError: the cause"


def test_an_empty_message_is_the_type_alone():
    assert one_line(RuntimeError("  ")) == "RuntimeError"
