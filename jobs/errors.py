"""Errors the CLI turns into one line and an exit code, never a traceback."""


class UsageError(Exception):
    """The command line or its inputs are wrong (exit code 2)."""
