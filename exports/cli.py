"""Command line: ``yolonas-batch export OUT --format FMT --to DEST [options]``.

Like ``detect``, a usage error (wrong flag, not a job output, unknown run, empty run, unwritable target) prints
one line and exits 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence, get_args

from pydantic import ValidationError

from common.cli import PROG, OneLineParser, config_error, usage_error
from common.errors import UsageError
from common.storage import location
from exports.run import run_export
from exports.select import parse_classes, parse_split
from schemas.export_config import ExportConfig, ExportFormat


def export_parser(prog: str = f"{PROG} export") -> OneLineParser:
    p = OneLineParser(prog=prog, description="Export a job's detections for annotation tools (pre-labelling).")
    p.add_argument("output", metavar="OUT", help="the job's output folder or s3:// prefix (detect --output)")
    p.add_argument("--format", required=True, choices=get_args(ExportFormat))
    p.add_argument("--to", required=True, metavar="DEST", help="new or empty folder or s3:// prefix to write to")
    p.add_argument("--min-score", type=float, default=0.0, help="leave out boxes scored below this (default 0)")
    p.add_argument(
        "--classes",
        metavar="SPEC",
        help="classes to keep, rename or merge: person,car=vehicle,truck=vehicle, or a .json file (a list of names, "
        "or {name: new name or null}); others are left out (default: all, as the model names them)",
    )
    p.add_argument("--run-id", help="export only this run's rows (default: every run, the newest row per frame)")
    p.add_argument(
        "--split", metavar="SPEC", help="train=0.8,val=0.2: frames to splits by a hash of the input's URI (stable)"
    )
    p.add_argument(
        "--errors",
        dest="include_errors",
        action="store_true",
        help="also export frames that failed, without boxes (default: left out and counted)",
    )
    p.add_argument("--results", action="store_true", help="coco: also write a COCO results list (for loadRes)")
    p.add_argument(
        "--document-root", help="label-studio: the folder its local-files storage serves (LOCAL_FILES_DOCUMENT_ROOT)"
    )
    p.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    return p


def export_main(argv: Sequence[str], prog: str = f"{PROG} export") -> int:
    """Parse, validate and run ``export``; one line and exit 2 for any usage error."""
    parsed = export_parser(prog).parse_or_exit_code(list(argv))
    if isinstance(parsed, int):
        return parsed
    args = vars(parsed)
    try:
        options = args["storage_options"]
        if args["classes"] is not None:
            args["classes"] = parse_classes(args["classes"], lambda path: location(path, options).read_bytes())
        if args["split"] is not None:
            args["split"] = parse_split(args["split"])
        config = ExportConfig(**args)
    except UsageError as exc:
        return usage_error(prog, str(exc))
    except ValidationError as exc:
        return config_error(prog, exc)
    try:
        summary = run_export(config)
    except UsageError as exc:
        return usage_error(prog, str(exc))
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(export_main(sys.argv[1:]))
