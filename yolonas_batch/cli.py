"""``yolonas-batch COMMAND …``: dispatch to the sub-command and return its exit code.

Each sub-command's module is imported only when it runs: ``export`` and ``report`` never import Ray or torch,
``track`` imports Ray only once it has videos to track, and only ``iceberg`` imports pyiceberg.
"""

from __future__ import annotations

import sys
from typing import Sequence

from common.cli import PROG, usage_error
from common.errors import EXIT_USAGE

USAGE = (
    f"usage: {PROG} detect SOURCE [SOURCE ...] --output OUT [options]\n"
    f"       {PROG} demo [--output OUT]   (the bundled sample photos, on a local Ray)\n"
    f"       {PROG} track OUT [options]   (tracks of the objects in the output's videos)\n"
    f"       {PROG} export OUT --format label-studio|coco|yolo|cvat|label-studio-video|cvat-video|mot --to DEST "
    "[options]\n"
    f"       {PROG} report OUT --to report.html [options]\n"
    f"       {PROG} iceberg OUT --catalog URI [--namespace NS] [--expire-snapshots-older-than DAYS]   "
    "(the committed shards as Iceberg tables)\n"
    f"run '{PROG} COMMAND --help' for the options"
)


def main(argv: Sequence[str] | None = None) -> int:
    """``yolonas-batch`` entry point: dispatch the sub-command and map outcomes to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else EXIT_USAGE
    command, rest = args[0], args[1:]
    if command == "demo":
        from jobs.cli import demo_main

        return demo_main(rest)
    if command == "detect":
        from jobs.cli import detect_main

        return detect_main(rest, prog=f"{PROG} detect")
    if command == "track":
        from jobs.tracking.cli import track_main

        return track_main(rest)
    if command == "export":
        from exports.cli import export_main

        return export_main(rest)
    if command == "report":
        from exports.report import report_main

        return report_main(rest)
    if command == "iceberg":
        from tables.cli import iceberg_main

        return iceberg_main(rest)
    return usage_error(PROG, f"unknown command {command!r} (expected detect, demo, track, export, report or iceberg)")
