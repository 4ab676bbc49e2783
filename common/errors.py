"""Errors the CLI turns into one line and an exit code, never a traceback; the exit codes themselves."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR_RATE = 0, 1, 2, 3
"""All inputs processed; the job failed (committed shards stay, a rerun resumes); usage error; finished, but the
share of ``error`` frames exceeds ``--max-error-rate``."""


class UsageError(Exception):
    """The command line or its inputs are wrong (exit code 2)."""
