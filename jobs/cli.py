"""The detection job's command line: ``yolonas-batch detect SOURCE... --output OUT [options]`` and ``demo``.

Usage errors (a wrong flag, a missing source, unreadable weights, an unwritable output) print one line and
exit 2, never a traceback; exit 1 means the job failed, 3 that too many inputs were errors, 4 that another run
holds the output; 129, 130 and 143 that SIGHUP, SIGINT or SIGTERM stopped the run in order (``jobs.stopping``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence, get_args

from pydantic import ValidationError

from common.cli import PROG, OneLineParser, add_iceberg_flags, config_error, usage_error
from common.errors import EXIT_BUSY, EXIT_ERROR_RATE, EXIT_OK, UsageError
from schemas.choices import DEFAULT_MODEL, MODEL_NAMES, DecodeMode, Device, OverwriteScope, Precision, RuntimeChoice
from schemas.config import JobConfig

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
"""Six COCO photos (CC BY) bundled for the demo run."""


def _default(field: str) -> Any:
    """The config's default for ``field``: the CLI shows and uses the same value the config validates."""
    return JobConfig.model_fields[field].default


def detect_parser(prog: str = f"{PROG} detect") -> OneLineParser:
    p = OneLineParser(prog=prog, description="Run YOLO-NAS over images and write detections to partitioned Parquet.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="file, folder, glob, s3://bucket/prefix or manifest")
    p.add_argument("--output", required=True, metavar="OUT", help="output folder or s3:// prefix")
    model = p.add_argument_group("model")
    model.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    model.add_argument(
        "--weights",
        default=_default("weights"),
        help="coco (torch hub's cache, else Deci's COCO weights from the Hugging Face mirror; non-commercial "
        "YOLO-NAS License), a checkpoint or .safetensors path or URI (s3://, https://, hf://org/repo/file), or random "
        "for a smoke run (default: coco)",
    )
    model.add_argument("--num-classes", type=int, help="classes of the checkpoint (checked against the weights)")
    model.add_argument("--class-names", metavar="FILE", help="class names, one per line or a JSON list")
    model.add_argument("--trust-checkpoint", action="store_true", help="allow pickled objects in the checkpoint")
    for flag, kind, what in (("conf", float, "score threshold"), ("iou", float, "NMS IoU threshold")):
        model.add_argument(f"--{flag}", type=kind, default=_default(flag), help=f"{what} (default {_default(flag)})")
    model.add_argument(
        "--max-det", type=int, default=_default("max_det"), help=f"boxes kept per frame (default {_default('max_det')})"
    )
    run = p.add_argument_group("execution")
    run.add_argument(
        "--batch-size",
        type=int,
        help="frames per model call (default: 8 on CPU; on GPU 64, halved until it fits the GPU's memory)",
    )
    run.add_argument("--workers", type=int, help="model actors (default: --actors-per-gpu per GPU, or one on CPU)")
    run.add_argument(
        "--actors-per-gpu",
        type=int,
        default=_default("actors_per_gpu"),
        help=f"model actors sharing each GPU (default {_default('actors_per_gpu')})",
    )
    run.add_argument(
        "--decode-workers", type=int, help="decode tasks at once at most (default: every CPU the model actors leave)"
    )
    run.add_argument(
        "--write-workers",
        type=int,
        help="write tasks at once at most, staging results to the output (default: 2 per model actor, at least 4)",
    )
    run.add_argument("--device", choices=get_args(Device), help="default: cuda when the cluster has GPUs")
    run.add_argument(
        "--precision",
        choices=get_args(Precision),
        default=_default("precision"),
        help="fp32 (default: super-gradients' boxes exactly); bf16 (CPUs with AVX512-BF16/AMX, GPUs) or fp16 (GPUs) "
        "for speed, within the tolerance docs/performance.md gives",
    )
    run.add_argument(
        "--runtime",
        choices=get_args(RuntimeChoice),
        default=_default("runtime"),
        help="what runs the model (default auto: ONNX Runtime for fp32 on CPUs, torch otherwise)",
    )
    run.add_argument(
        "--shard-size",
        type=int,
        default=_default("shard_size"),
        help="frames per shard (an image is one), the unit of commit/resume",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume", dest="overwrite", action="store_const", const=None, help="skip committed shards (default)"
    )
    mode.add_argument(
        "--overwrite",
        nargs="?",
        const="model",
        choices=get_args(OverwriteScope),
        help="delete this model's earlier runs in OUT and their rows, and start clean; --overwrite all: every run's",
    )
    run.add_argument(
        "--incremental",
        action="store_true",
        help="process only inputs new or changed since earlier runs of the same model into OUT (for schedules)",
    )
    run.add_argument(
        "--max-error-rate",
        type=float,
        default=_default("max_error_rate"),
        help="error share above which exit code is 3",
    )
    run.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    for field, what in (
        ("stall_timeout", "end and retry a pipeline run that finishes no frame and commits no shard for S seconds"),
        ("lease_ttl", "the output's lease lasts S seconds unrenewed: how long a killed run keeps the next one out"),
        ("stop_grace", "on SIGTERM, SIGINT or SIGHUP, wait up to S seconds for the shards being published"),
    ):
        flag = "--" + field.replace("_", "-")
        run.add_argument(
            flag, type=float, default=_default(field), metavar="S", help=f"{what} (default {_default(field):g})"
        )
    run.add_argument(
        "--decode",
        choices=get_args(DecodeMode),
        default=_default("decode"),
        help="exact: super-gradients' pixels (default); fast: a JPEG twice the model's input or more decoded by "
        "libjpeg at 1/2-1/8 of its size, video frames scaled by FFmpeg while converted to RGB: several times faster on "
        "camera photos and HD video, other pixels (docs/performance.md gives the agreement); device: JPEGs decoded "
        "and letterboxed by the model actors on their device (nvJPEG on a GPU), the CPUs only read them; exact's "
        "pixels on a CPU, within a few levels on a GPU",
    )
    run.add_argument(
        "--max-image-pixels",
        type=int,
        default=_default("max_image_pixels"),
        help=f"refuse images declaring more pixels, unread (default {_default('max_image_pixels'):,})",
    )
    add_iceberg_flags(run, "shards", "frames and detections")
    run.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    video = p.add_argument_group("video")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--video-stride", type=int, help="every Nth frame")
    sampling.add_argument("--video-fps", type=float, help="frames nearest to this rate")
    video.add_argument("--max-frames", type=int, help="sampled frames per video at most")
    video.add_argument(
        "--track",
        action="store_true",
        help="then track the objects of the output's videos (as 'track OUT' with its default settings, and "
        "--iceberg's tables)",
    )
    video.add_argument(
        "--video-segment-frames",
        type=int,
        default=_default("video_segment_frames"),
        help="decoded frames per video range; longer videos are spread over the workers "
        f"(default {_default('video_segment_frames')})",
    )
    return p


def demo_main(argv: Sequence[str]) -> int:
    """Run ``detect`` on the bundled samples: with the COCO weights when they can be had (cached, or fetched from
    the Hugging Face mirror now), else as a loud smoke run with random weights."""
    parser = OneLineParser(prog=f"{PROG} demo", description="Run the job on the bundled sample photos.")
    parser.add_argument("--output", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES)
    args = parser.parse_args(argv)
    command = [str(SAMPLES), "--output", args.output, "--model", args.model, "--weights", _demo_weights(args.model)]
    return detect_main(command, prog=f"{PROG} demo")


def _demo_weights(model: str) -> str:
    """``coco`` if its weights load (fetching them once if need be), else ``random`` with a banner saying why."""
    from workers.weights import WeightsError, coco_weights

    try:
        coco_weights(model)
    except WeightsError as exc:
        print(
            "=" * 78 + "\n"
            "SMOKE RUN WITH RANDOM WEIGHTS, so expect 0 detections: the COCO weights could not be had.\n"
            f"{exc}\n"
            f"or run: {PROG} detect samples --output OUT --weights YOUR_CHECKPOINT\n" + "=" * 78,
            file=sys.stderr,
            flush=True,
        )
        return "random"
    return "coco"


def detect_main(argv: Sequence[str], prog: str) -> int:
    """Parse, validate and run ``detect``; one line and exit 2 for any usage error."""
    namespace = detect_parser(prog).parse_args(argv)
    try:
        config = JobConfig(**vars(namespace))
    except ValidationError as exc:
        return config_error(prog, exc)
    from jobs.records.lease import LeaseHeld, LeaseLost
    from jobs.stopping import Stopped

    try:
        from jobs.runner import run_job

        code = run_job(config).exit_code
    except UsageError as exc:
        return usage_error(prog, str(exc))
    except (LeaseHeld, LeaseLost) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except Stopped as stop:
        print(stop.line(prog), file=sys.stderr)
        return stop.exit_code
    if not config.track or code not in (EXIT_OK, EXIT_ERROR_RATE):
        return code
    return track_after(config, prog) or code


def track_after(config: JobConfig, prog: str) -> int:
    """``--track``: track the output's videos once the run is done; its exit code (0 when there is no video)."""
    from jobs.tracking.cli import run_tracking_command
    from schemas.track_config import TrackConfig

    track = TrackConfig(
        output=config.output,
        ray_address=config.ray_address,
        stall_timeout=config.stall_timeout,
        lease_ttl=config.lease_ttl,
        stop_grace=config.stop_grace,
        iceberg=config.iceberg,
        iceberg_namespace=config.iceberg_namespace,
        storage_options=config.storage_options,
    )
    return run_tracking_command(track, f"{prog} --track", no_video_ok=True)
