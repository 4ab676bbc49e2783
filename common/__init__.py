"""What the detection job and the exports share, with neither's logic in it: one storage entry point (local and
object stores), the errors and exit codes, live progress, and the command line's one-line usage errors.

It imports only ``schemas/`` and ``workers/`` helpers that carry no model, so ``jobs/`` and ``exports/`` both
build on it without importing each other.
"""
