"""Command line: ``yolonas-batch iceberg OUT --catalog CATALOG [--namespace NS] [--warehouse W]
[--expire-snapshots-older-than DAYS] [--storage-options JSON]``.

Like every command, a usage error (a wrong flag, a catalog that cannot be opened, an output that is not a job's)
is one line and exit code 2; a commit another writer of the same table won is one line and exit code 1, and the
same command then adds what is still missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from datetime import datetime, timezone
from typing import Sequence

from common.cli import PROG, OneLineParser, usage_error
from common.committed_files import require_output
from common.errors import EXIT_FAILED, UsageError
from common.storage import location
from schemas import layout


def iceberg_parser(prog: str = f"{PROG} iceberg") -> OneLineParser:
    p = OneLineParser(prog=prog, description="Publish a job's committed shards (and tracks) as Apache Iceberg tables.")
    p.add_argument("output", metavar="OUT", help="the job's output folder (detect --output)")
    p.add_argument(
        "--catalog",
        required=True,
        metavar="CATALOG",
        help="local (a SQLite catalog in OUT), a SQLAlchemy URI of pyiceberg's SQL catalog (sqlite:///catalog.db, "
        "postgresql://…), or the name of a catalog configured for pyiceberg (~/.pyiceberg.yaml, PYICEBERG_CATALOG__* "
        "variables: Glue, REST, Hive, SQL)",
    )
    p.add_argument("--namespace", help="the tables' namespace (default: OUT's folder name, made an identifier)")
    p.add_argument(
        "--warehouse",
        help="where Iceberg keeps its metadata and the files its deletes rewrite (default: a named catalog's own "
        f"warehouse, else OUT/{layout.ICEBERG})",
    )
    p.add_argument(
        "--expire-snapshots-older-than",
        type=_days,
        metavar="DAYS",
        help="after publishing, expire the tables' snapshots made more than DAYS ago (the current one is kept; "
        "no file is removed)",
    )
    p.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    return p


def _days(value: str) -> float:
    try:
        days = float(value)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of days, 0 or more, not {value!r}")
    return days


def iceberg_main(argv: Sequence[str], prog: str = f"{PROG} iceberg") -> int:
    """Parse, open the catalog and publish, then expire old snapshots when asked; one line and exit 2 for any
    usage error."""
    parsed = iceberg_parser(prog).parse_or_exit_code(list(argv))
    if isinstance(parsed, int):
        return parsed
    from pyiceberg.exceptions import CommitFailedException

    from tables.catalog import check_namespace, first_line, namespace_of
    from tables.connect import connect
    from tables.expiry import expire
    from tables.publish import publish

    logging.getLogger("pyiceberg").setLevel(logging.ERROR)  # its notes on files it rewrites are not the user's
    options = parsed.storage_options
    if not isinstance(options, dict):
        return usage_error(prog, "--storage-options: expected a JSON object")
    out = location(parsed.output, options)
    try:
        require_output(out)  # before the catalog, which a SQLite URI makes as a file
        namespace = check_namespace(parsed.namespace) if parsed.namespace else namespace_of(out.path)
        catalog = connect(parsed.catalog, out, options, parsed.warehouse)
        done = publish(out, catalog, namespace)
        print(done.line())
        days = parsed.expire_snapshots_older_than
        if days is not None:
            print(expire(catalog, namespace, days, datetime.now(timezone.utc)).line())
    except UsageError as exc:
        return usage_error(prog, str(exc))
    except CommitFailedException as exc:
        print(
            f"{prog}: another writer changed the table first ({first_line(exc)}); run again to add the rest",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(iceberg_main(sys.argv[1:]))
