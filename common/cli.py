"""What every sub-command's command line shares: its name, and usage errors told in one line with exit code 2.

A usage error (a wrong flag, a value the config refuses, an output that is not a job's) is always one line on
stderr, ``<prog>: error: <message>``, and exit code 2, never a traceback or argparse's usage block.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from pydantic import ValidationError

from common.errors import EXIT_USAGE

PROG = "yolonas-batch"


def usage_error(prog: str, message: str) -> int:
    """The one way a usage error is told: one line on stderr, exit code 2, never a traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def config_error(prog: str, error: ValidationError) -> int:
    """A config model's refusal as a usage error naming the flag (``--conf: …``) of its first complaint."""
    first = error.errors()[0]
    names = [p for p in first["loc"] if isinstance(p, str)]
    where = names[-1] if names else ""  # a nested model's field is still one flag (settings.min_iou: --min-iou)
    return usage_error(prog, f"--{where.replace('_', '-')}: {first['msg']}" if where else first["msg"])


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        sys.exit(usage_error(self.prog, message))

    def parse_or_exit_code(self, argv: list[str]) -> argparse.Namespace | int:
        """The parsed arguments, or the exit code argparse would have exited with (``--help`` 0, a usage error
        2, already told in one line): a sub-command returns its code instead of exiting the caller's process."""
        try:
            return self.parse_args(argv)
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def add_iceberg_flags(group: argparse._ActionsContainer, what: str, tables: str) -> None:
    """``--iceberg URI`` and ``--iceberg-namespace NS``, ``detect``'s and ``track``'s: publish the run's committed
    ``what`` to the Iceberg tables ``tables`` as it goes (``jobs.commit.iceberg``)."""
    group.add_argument(
        "--iceberg",
        metavar="CATALOG",
        help=f"publish committed {what} to the Iceberg tables {tables} of this catalog as the run goes "
        "(what 'iceberg --catalog' takes: local, a SQLAlchemy URI, a catalog configured for pyiceberg; docs/tables.md)",
    )
    group.add_argument(
        "--iceberg-namespace",
        metavar="NS",
        help="the tables' namespace (default: OUT's folder name, made an identifier)",
    )
