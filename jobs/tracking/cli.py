"""``yolonas-batch track OUT [options]``: tracks of the objects in the videos of a job's output.

Like ``detect`` and ``export``, a usage error (a wrong flag, not a job output, an unknown run, no video in it) is
one line and exit 2; 1 means some video could not be tracked (the others are committed, a rerun does the rest);
4 that another run holds the output; 129, 130 and 143 that SIGHUP, SIGINT or SIGTERM stopped it in order.
"""

from __future__ import annotations

import json
import sys
from typing import Sequence, get_args

from pydantic import ValidationError

from common.cli import PROG, OneLineParser, add_iceberg_flags, config_error, usage_error
from common.errors import EXIT_BUSY, EXIT_OK, UsageError
from jobs.tracking.plan import NoVideos
from schemas.track_config import TrackConfig, TrackerName, TrackerSettings


def track_parser(prog: str = f"{PROG} track") -> OneLineParser:
    p = OneLineParser(
        prog=prog,
        description="Follow the objects of each video over its frames (ByteTrack, from the committed detections) "
        "and write a tracks table, for video pre-labelling (export --format label-studio-video|cvat-video|mot).",
    )
    p.add_argument("output", metavar="OUT", help="the job's output folder or s3:// prefix (detect --output)")
    p.add_argument("--run-id", help="track only this run's detections (default: every run's, the newest row per frame)")
    p.add_argument("--tracker", choices=get_args(TrackerName), default="bytetrack")
    add_tracker_flags(p)
    p.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    for field, what in (
        ("stall_timeout", "give up on the videos still running when none finished for S seconds"),
        ("lease_ttl", "the output's lease lasts S seconds unrenewed (as detect's)"),
        ("stop_grace", "on SIGTERM, SIGINT or SIGHUP, wait up to S seconds for the videos being tracked"),
    ):
        default = TrackConfig.model_fields[field].default
        flag = "--" + field.replace("_", "-")
        p.add_argument(flag, type=float, default=default, metavar="S", help=f"{what} (default {default:g})")
    add_iceberg_flags(p, "tracks", "tracks and track_summaries")
    p.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    return p


def add_tracker_flags(parser: OneLineParser) -> None:
    """The tracker's settings as flags (``track``'s, and ``detect --track``'s), defaults from ``TrackerSettings``."""
    group = parser.add_argument_group("tracker")
    for name, what in (
        ("high_score", "boxes scored at least this are matched to tracks first"),
        ("new_track_score", "a track starts only from a box scored at least this"),
        ("min_iou", "a box continues a track only if it overlaps the track's predicted box this much"),
        ("lost_after", "seconds of video a track survives unseen before it ends"),
    ):
        default = TrackerSettings.model_fields[name].default
        group.add_argument("--" + name.replace("_", "-"), type=float, help=f"{what} (default {default:g})")


def track_main(argv: Sequence[str], prog: str = f"{PROG} track") -> int:
    """Parse, validate and run ``track``; one line and exit 2 for any usage error."""
    parsed = track_parser(prog).parse_or_exit_code(list(argv))
    if isinstance(parsed, int):
        return parsed
    try:
        config = TrackConfig(**vars(parsed))
    except ValidationError as exc:
        return config_error(prog, exc)
    return run_tracking_command(config, prog)


def run_tracking_command(config: TrackConfig, prog: str, no_video_ok: bool = False) -> int:
    """Run ``config`` and print its summary; the exit code a scheduler acts on. ``no_video_ok``: an output with
    no video is a note and exit 0, not a usage error (``detect --track`` over photos)."""
    from jobs.records.lease import LeaseHeld, LeaseLost
    from jobs.stopping import Stopped
    from jobs.tracking.runner import run_tracking

    try:
        result = run_tracking(config)
    except NoVideos as exc:
        if no_video_ok:
            print(f"{prog}: nothing to track: {exc}")
            return EXIT_OK
        return usage_error(prog, str(exc))
    except UsageError as exc:
        return usage_error(prog, str(exc))
    except (LeaseHeld, LeaseLost) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except Stopped as stop:
        print(stop.line(prog), file=sys.stderr)
        return stop.exit_code
    from common.storage import location

    print("\n".join(result.lines(location(config.output, config.storage_options))))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(track_main(sys.argv[1:]))
