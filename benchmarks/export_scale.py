"""Time and peak memory of ``export`` on a large synthetic output: no model, no images, just the job's Parquet.

    python -m uv run --frozen python benchmarks/export_scale.py [--frames 100000[,20000]] [--boxes 20]
                                                               [--formats coco,yolo] [--json out/export.json]

The output is written by the job's own commit code (``tests/support/outputs.py``: shards with markers, a
manifest, ``--boxes`` boxes per frame on average, one frame in 200 an error). Each export runs in its own Python
process, so its peak RSS (``ru_maxrss``, DuckDB's memory included) is its own; memory is bounded when the peak
stays flat while the number of frames grows. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", default="100000", help="frames of the output; several, comma-separated")
    parser.add_argument("--boxes", type=int, default=20, help="boxes per frame on average")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--formats", default="coco,yolo")
    parser.add_argument("--memory-limit", help="DuckDB's memory budget (default: exports.reader.MEMORY_LIMIT)")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "export_scale.json")
    parser.add_argument("--child", nargs=3, metavar=("OUT", "FORMAT", "TO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_export(*args.child, memory_limit=args.memory_limit)))
        return
    results = []
    for frames in (int(f) for f in args.frames.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            generated = _generate(out, frames, args.boxes, args.shard_size)
            for fmt in args.formats.split(","):
                command = [sys.executable, __file__, "--child", str(out), fmt, str(Path(tmp) / fmt)]
                command += ["--memory-limit", args.memory_limit] if args.memory_limit else []
                finished = subprocess.run(command, capture_output=True, text=True, check=True)
                results.append({**generated, **json.loads(finished.stdout.strip().splitlines()[-1])})
    _report(results, args.json)


def _generate(out: Path, frames: int, boxes: int, shard_size: int) -> dict[str, float]:
    from common.storage import location
    from tests.support.outputs import random_run, run_id

    started = time.perf_counter()
    manifest = random_run(location(str(out)), run_id(1), frames, boxes_per_frame=boxes, shard_size=shard_size)
    parquet = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    return {
        "frames": frames,
        "detections": manifest.counts.detections,
        "shards": manifest.plan.shards,
        "parquet_mib": round(parquet / MIB, 1),
        "generate_s": round(time.perf_counter() - started, 1),
    }


def _export(out: str, fmt: str, to: str, memory_limit: str | None) -> dict[str, float | str]:
    """One export in this process: its wall time, peak RSS, and what it wrote."""
    from exports import committed
    from exports.run import run_export
    from schemas.export_config import ExportConfig

    committed.MEMORY_LIMIT = memory_limit or committed.MEMORY_LIMIT
    started = time.perf_counter()
    summary = run_export(ExportConfig(output=out, format=fmt, to=to), stream=io.StringIO())
    wall = time.perf_counter() - started
    written = [p for p in Path(to).rglob("*") if p.is_file()]
    return {
        "format": fmt,
        "memory_limit": committed.MEMORY_LIMIT,
        "exported_frames": summary.frames,
        "boxes": summary.boxes,
        "wall_s": round(wall, 1),
        "frames_per_s": round(summary.frames / wall),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB),
        "files": len(written),
        "export_mib": round(sum(p.stat().st_size for p in written) / MIB, 1),
    }


def _report(results: list[dict], path: Path) -> None:
    columns = ["frames", "detections", "format", "wall_s", "frames_per_s", "peak_rss_mib", "files", "export_mib"]
    print("".join(f"{c:>14}" for c in columns))
    for r in results:
        print("".join(f"{r[c]:>14}" for c in columns))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
