"""How many frames per second the job's decode stage delivers on Ray, alone (no model): the rate it can feed
GPUs at, with photos handed to decode tasks in blocks and decoded a block at a call, so each task's frames leave
it in full batches (``jobs.pipeline.dataset.work_blocks``, as the job does), against the same blocks decoded a
photo at a call, so each photo leaves as an output block of its own.

    python3 -m uv run --frozen python benchmarks/decode_stage.py [--images DIR] [--copies 32] [--photos-per-block 8]
        [--decode exact|fast|device] [--repeat 2] [--json out/decode_stage.json]

The photos (``--copies`` times each, as distinct work items) go through ``decode_batch`` in a Ray Data task
pool on a local Ray with every CPU of the machine, and the driver counts the frames that come out, as the model
actors would take them; each layout runs ``--repeat`` times, alternating, after a warm-up. On a GPU node this
is the ceiling the CPUs put on the job; with ``--decode device`` the stage only reads and checks JPEGs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pyarrow as pa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support import image_paths  # noqa: E402
from schemas.choices import DecodeMode  # noqa: E402
from schemas.tables import PLAN_SCHEMA  # noqa: E402
from workers.letterbox import LetterboxSpec  # noqa: E402
from workers.video import Sampling  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "coco-tiny" / "images")
    parser.add_argument("--copies", type=int, default=32, help="times each photo is decoded")
    parser.add_argument("--photos-per-block", type=int, default=8, help="the job's: its CPU batch size")
    parser.add_argument("--decode", choices=["exact", "fast", "device"], default="exact")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=REPO / "out" / "decode_stage.json")
    args = parser.parse_args(argv)

    import ray

    from jobs.pipeline.dataset import work_blocks
    from jobs.pipeline.ray_session import start_ray

    start_ray(None)
    pending = _plan([p for p in image_paths(args.images) for _ in range(args.copies)])
    layouts = {"a block a call": None, "a photo a call": 1}
    blocks = work_blocks(pending, args.photos_per_block)
    _rate(blocks[:8], 1, args.decode)  # warm: the task pool's workers start
    rates: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(args.repeat):
        for name, batch_size in layouts.items():
            rates[name].append(_rate(blocks, batch_size, args.decode))
    results = {
        "frames": pending.num_rows,
        "cpus": int(ray.cluster_resources().get("CPU", 0)),
        "decode": args.decode,
        "photos_per_block": args.photos_per_block,
        "frames_per_s": {name: max(values) for name, values in rates.items()},
    }
    print(f"decode stage on Ray, {results['cpus']} CPUs, {results['frames']} frames, --decode {args.decode}:")
    for name, rate in results["frames_per_s"].items():
        print(f"  {name:<18} {rate:8.1f} frames/s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))


def _plan(paths: list[Path]) -> pa.Table:
    """A plan of photos, one work item each, as the planner writes it."""
    n = len(paths)
    columns = {
        "source_uri": ["file://" + str(p.resolve()) for p in paths],
        "size": [p.stat().st_size for p in paths],
        "version": [None] * n,
        "kind": ["image"] * n,
        "item": list(range(n)),
        "frame_start": [0] * n,
        "frame_stop": [None] * n,
        "fps": [None] * n,
        "video_frames": [None] * n,
        "expected_frames": [1] * n,
        "shard_id": ["00000"] * n,
        "partition": ["bench"] * n,
    }
    return pa.table(columns, schema=PLAN_SCHEMA)


def _rate(blocks: list[pa.Table], batch_size: int | None, decode: DecodeMode) -> float:
    import ray

    from jobs.pipeline.decode_stage import Decoding, decode_batch

    decoding = Decoding(LetterboxSpec(), Sampling(), {}, rows_per_batch=8, max_pixels=10**9, mode=decode)
    dataset = ray.data.from_blocks(blocks).map_batches(
        decode_batch,
        batch_size=batch_size,
        batch_format="numpy",
        fn_kwargs={"decoding": decoding},
        compute=ray.data.TaskPoolStrategy(size=None),
        num_cpus=1,
    )
    started, frames = time.perf_counter(), 0
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
        frames += len(batch["status"])
    assert frames == sum(block.num_rows for block in blocks), frames
    return frames / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
