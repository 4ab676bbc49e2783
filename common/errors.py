"""Errors the CLI turns into one line and an exit code, never a traceback; the exit codes themselves."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR_RATE, EXIT_BUSY = 0, 1, 2, 3, 4
"""All inputs processed; the job failed (committed shards stay, a rerun resumes); usage error; finished, but the
share of ``error`` frames exceeds ``--max-error-rate``; another run holds the output (nothing was done: a
scheduler skips this turn, as Kubernetes' ``concurrencyPolicy: Forbid`` does), or took it over from this one."""

EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM = 129, 130, 143
"""A run stopped in order by SIGHUP, SIGINT or SIGTERM (``jobs.stopping``): 128 plus the signal's number, as shells
report a process the signal killed, so a scheduler tells a stop from a failure; the run is recorded as
``interrupted`` and the same command resumes it."""


class UsageError(Exception):
    """The command line or its inputs are wrong (exit code 2)."""
