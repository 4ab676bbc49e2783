"""Command line: ``yolonas-batch detect SOURCE... --output OUT [options]``.

Usage errors (a wrong flag, a missing source, unreadable weights, an unwritable output) print one line and
exit 2, never a traceback; exit 1 means the job failed, 3 that too many inputs were errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from pydantic import ValidationError

from jobs.errors import UsageError

PROG = "yolonas-batch"
SAMPLES = Path(__file__).resolve().parents[1] / "samples"
"""Six COCO photos (CC BY) bundled for the demo run."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line (exit 2) instead of a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def detect_parser(prog: str = f"{PROG} detect") -> argparse.ArgumentParser:
    from workers.preprocess import DEFAULT_MAX_PIXELS

    p = _Parser(prog=prog, description="Run YOLO-NAS over images and write detections to partitioned Parquet.")
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="file, folder, glob, s3://bucket/prefix or manifest")
    p.add_argument("--output", required=True, metavar="OUT", help="output folder or s3:// prefix")
    model = p.add_argument_group("model")
    model.add_argument("--model", default="yolo_nas_s", choices=["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"])
    model.add_argument(
        "--weights", default="coco", help="coco, a checkpoint path or URI, or random for a smoke run (default: coco)"
    )
    model.add_argument("--num-classes", type=int, help="classes of the checkpoint (checked against the weights)")
    model.add_argument("--class-names", metavar="FILE", help="class names, one per line or a JSON list")
    model.add_argument("--trust-checkpoint", action="store_true", help="allow pickled objects in the checkpoint")
    model.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    model.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    model.add_argument("--max-det", type=int, default=300, help="boxes kept per frame (default 300)")
    run = p.add_argument_group("execution")
    run.add_argument(
        "--batch-size",
        type=int,
        help="frames per model call (default: 8 on CPU; on GPU 64, halved until it fits the GPU's memory)",
    )
    run.add_argument("--workers", type=int, help="model actors (default: --actors-per-gpu per GPU, or one on CPU)")
    run.add_argument("--actors-per-gpu", type=int, default=2, help="model actors sharing each GPU (default 2)")
    run.add_argument(
        "--decode-workers", type=int, help="decode tasks at once at most (default: every CPU the model actors leave)"
    )
    run.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when the cluster has GPUs")
    run.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="fp32 (default: super-gradients' boxes exactly); bf16 (CPUs with AVX512-BF16/AMX, GPUs) or fp16 (GPUs) "
        "for speed, within the tolerance the README gives",
    )
    run.add_argument(
        "--runtime",
        choices=["auto", "torch", "onnxruntime"],
        default="auto",
        help="what runs the model (default auto: ONNX Runtime for fp32 on CPUs, torch otherwise)",
    )
    run.add_argument(
        "--shard-size", type=int, default=1000, help="frames per shard (an image is one), the unit of commit/resume"
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="overwrite", action="store_false", help="skip committed shards (default)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true", help="delete earlier output, start clean")
    run.add_argument(
        "--incremental",
        action="store_true",
        help="process only inputs new or changed since earlier runs of the same model into OUT (for schedules)",
    )
    p.set_defaults(overwrite=False)  # without it argparse takes --resume's own default (True) for the pair
    run.add_argument("--max-error-rate", type=float, default=0.05, help="error share above which exit code is 3")
    run.add_argument("--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    run.add_argument(
        "--max-image-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse images declaring more pixels, unread (default {DEFAULT_MAX_PIXELS:,})",
    )
    run.add_argument("--storage-options", type=json.loads, default={}, metavar="JSON", help="extra fsspec options")
    video = p.add_argument_group("video")
    sampling = video.add_mutually_exclusive_group()
    sampling.add_argument("--video-stride", type=int, help="every Nth frame")
    sampling.add_argument("--video-fps", type=float, help="frames nearest to this rate")
    video.add_argument("--max-frames", type=int, help="sampled frames per video at most")
    video.add_argument(
        "--video-segment-frames",
        type=int,
        default=1800,
        help="decoded frames per video range; longer videos are spread over the workers (default 1800)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``yolonas-batch`` entry point: dispatch the sub-command and map outcomes to exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(
            f"usage: {PROG} detect SOURCE [SOURCE ...] --output OUT [options]\n"
            f"       {PROG} demo [--output OUT]   (the bundled sample photos, on a local Ray)\n"
            f"run '{PROG} detect --help' for the options"
        )
        return 0 if args else 2
    if args[0] == "demo":
        return demo_main(args[1:])
    if args[0] != "detect":
        print(f"{PROG}: error: unknown command {args[0]!r} (expected 'detect' or 'demo')", file=sys.stderr)
        return 2
    return detect_main(args[1:], prog=f"{PROG} detect")


def demo_main(argv: Sequence[str]) -> int:
    """Run ``detect`` on the bundled samples: COCO weights when torch hub has them, else a loud smoke run."""
    from workers.weights import coco_cache_path

    parser = _Parser(prog=f"{PROG} demo", description="Run the job on the bundled sample photos.")
    parser.add_argument("--output", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--model", default="yolo_nas_s", choices=["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"])
    args = parser.parse_args(argv)
    cached = coco_cache_path(args.model)
    weights = "coco" if cached.is_file() else "random"
    if weights == "random":
        print(
            "=" * 78 + "\n"
            "SMOKE RUN WITH RANDOM WEIGHTS: no COCO weights in torch hub's cache, so expect 0 detections.\n"
            f"For real detections put {cached.name} at {cached}\n"
            f"or run: {PROG} detect samples --output OUT --weights YOUR_CHECKPOINT.pth\n" + "=" * 78,
            file=sys.stderr,
            flush=True,
        )
    command = [str(SAMPLES), "--output", args.output, "--model", args.model, "--weights", weights]
    return detect_main(command, prog=f"{PROG} demo")


def detect_main(argv: Sequence[str], prog: str) -> int:
    """Parse, validate and run ``detect``; one line and exit 2 for any usage error."""
    namespace = detect_parser(prog).parse_args(argv)
    try:
        from schemas.config import JobConfig

        config = JobConfig(**vars(namespace))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        return _usage_error(prog, f"--{where.replace('_', '-')}: {first['msg']}" if first["loc"] else first["msg"])
    try:
        from jobs.runner import run_job

        return run_job(config).exit_code
    except UsageError as exc:
        return _usage_error(prog, str(exc))


def _usage_error(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
