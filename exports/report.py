"""``yolonas-batch report OUT --to report.html``: a job's output as one self-contained HTML page, for review.

The page shows the runs (model, weights, attempts), frames by status and error stage, detections per class,
the score and boxes-per-frame distributions, the failed inputs and a grid of annotated thumbnails. It is one
file that opens offline (see ``exports.report_html``). The numbers come from DuckDB over the committed rows
(``exports.report_stats``); only the sampled thumbnails read input pixels (``exports.report_thumbs``).

A folder that is not a job output, holds no committed frames yet, or cannot be read is told in one line with
exit code 2, like every usage error of the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from common.cli import PROG, OneLineParser, usage_error
from common.errors import UsageError
from common.storage import location
from exports.committed import CommittedRows
from exports.report_html import PageContent, render_page
from exports.report_stats import OutputStats, Stats
from exports.report_thumbs import Thumbnail, thumbnails
from workers.errors import one_line

DEFAULT_THUMBNAILS = 24


@dataclass(frozen=True)
class Report:
    html: str
    stats: Stats
    thumbnails: list[Thumbnail]


def report_parser(prog: str = f"{PROG} report") -> OneLineParser:
    p = OneLineParser(prog=prog, description="Write a job output's statistics and sample frames as one HTML page.")
    p.add_argument("output", metavar="OUT", help="the job's output folder or s3:// prefix (detect --output)")
    p.add_argument("--to", default="report.html", help="the HTML file to write, local or s3:// (default report.html)")
    p.add_argument(
        "--thumbnails",
        type=_count,
        default=DEFAULT_THUMBNAILS,
        metavar="N",
        help=f"annotated sample frames in the grid (default {DEFAULT_THUMBNAILS}; 0 for none)",
    )
    p.add_argument("--run-id", help="only this run's rows (default: every run, the newest row per frame)")
    p.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    return p


def report_main(argv: Sequence[str], prog: str = f"{PROG} report") -> int:
    """Parse, build the page, write it; one line and exit 2 for a usage error or an output it cannot report.

    Returns the exit code, argparse's own included (``--help`` 0, a bad flag 2), rather than exiting."""
    args = report_parser(prog).parse_or_exit_code(list(argv))
    if isinstance(args, int):
        return args
    if not isinstance(args.storage_options, dict):
        return usage_error(prog, "--storage-options: expected a JSON object")
    try:
        target = location(args.to, args.storage_options)
    except (ValueError, ImportError) as exc:  # fsspec: an unknown protocol, or its package missing
        return usage_error(prog, f"--to: {one_line(exc, keep='first')}")
    if target.is_local and not _writable_folder(os.path.dirname(target.path)):
        return usage_error(prog, f"--to: cannot write in {os.path.dirname(target.path)}")
    try:
        report = build_report(args.output, args.run_id, args.thumbnails, args.storage_options)
    except UsageError as exc:
        return usage_error(prog, str(exc))
    try:
        target.write_bytes_atomic(report.html.encode("utf-8"))
    except OSError as exc:
        return usage_error(prog, f"--to: cannot write {target.uri}: {exc.strerror or exc}")
    counts, missing = report.stats.counts, sum(1 for t in report.thumbnails if t.jpeg is None)
    print(
        f"report: {target.uri} ({counts.frames:,} frames, {counts.error:,} errors, {counts.detections:,} detections, "
        f"{len(report.thumbnails)} thumbnails" + (f", {missing} could not be shown)" if missing else ")"),
        file=sys.stderr,
    )
    return 0


def build_report(out: str, run_id: str | None, thumbnail_count: int, storage_options: dict[str, Any]) -> Report:
    """The page for the output at ``out``. Raises ``UsageError`` (one line) when it cannot be made.

    DuckDB's progress bar shows on a terminal for long queries."""
    try:
        out_location = location(out, storage_options)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"{out}: {one_line(exc, keep='first')}") from None
    with CommittedRows(out_location, run_id, progress=sys.stderr.isatty()) as rows:
        manifests = rows.manifests()
        tables = OutputStats(rows)
        stats = tables.stats()
        sampled = tables.sample(thumbnail_count)
    thumbs = thumbnails(sampled, storage_options)
    page = PageContent(
        out_uri=out_location.uri,
        run_filter=run_id,
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        manifests=manifests,
        stats=stats,
        thumbnails=thumbs,
        thumbnails_asked=thumbnail_count,
    )
    return Report(render_page(page), stats, thumbs)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return value


def _writable_folder(folder: str) -> bool:
    """Whether a file can be created in ``folder``, or in the folders the write would make under its nearest
    existing ancestor: checked before minutes of work, not after, and without creating anything."""
    folder = os.path.abspath(folder or ".")
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return os.path.isdir(folder) and os.access(folder, os.W_OK)
