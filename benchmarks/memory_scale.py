"""Memory of the job as its input grows: peak driver RSS and peak object-store use at 1x and 10x the images.

    python -m uv run --frozen python benchmarks/memory_scale.py [--images DIR] [--weights PATH|random] [--scale 10]

Each size runs in its own Python process (a process's peak RSS never goes down) on a fresh local Ray (or the
cluster ``RAY_ADDRESS`` names), with a thread sampling the driver's RSS and the object store's bytes in use every
0.25 s. Memory is bounded when the peaks stay flat while the input grows: the driver holds the plan and one shard's
rows at a time, and Ray Data streams blocks under its object-store budget. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support import copied_images, image_paths, weights_file  # noqa: E402

MIB = 1024 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "coco-tiny" / "images")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--json", type=Path, default=REPO / "out" / "memory.json")
    parser.add_argument("--child", nargs=2, metavar=("IMAGES", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(Path(args.child[0]), args.child[1], args.weights, args.shard_size)))
        return
    paths = image_paths(args.images)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, "yolo_nas_s", Path(tmp))
        # Both sizes load the model from a warm cache (a scheduled run's case), so their peaks compare like for like:
        # the model cache in use, else one of this measurement's own.
        os.environ.setdefault("YOLONAS_BATCH_CACHE", str(Path(tmp) / "cache"))
        _warm_model_cache(weights)
        for copies in (1, args.scale):
            folder = copied_images(paths, Path(tmp) / f"images-x{copies}", copies)
            command = [sys.executable, __file__, "--child", str(folder), str(Path(tmp) / f"out-x{copies}")]
            command += ["--weights", weights, "--shard-size", str(args.shard_size)]
            finished = subprocess.run(command, capture_output=True, text=True, check=True)
            results[f"x{copies}"] = json.loads(finished.stdout.strip().splitlines()[-1])
    _report(results, args.json)


def _warm_model_cache(weights: str) -> None:
    """Put the models the job's CPU actors may load (as the job itself chooses them) into the model cache."""
    from jobs.planning.model_setup import prepare_model
    from jobs.runner import cpu_models
    from schemas.config import JobConfig

    config = JobConfig(sources=["unused"], output="unused", weights=weights)
    cpu_models(config, prepare_model(config))


def _measure(images: Path, out: str, weights: str, shard_size: int) -> dict[str, float]:
    """Run the job on ``images`` in this process while sampling memory; the peaks and counts as a dict."""
    import psutil
    import ray

    from jobs.runner import run_job  # before Ray: the jobs package sets how Ray starts workers
    from schemas.config import JobConfig

    driver = psutil.Process()
    peaks = {"driver_rss": 0, "object_store": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.25):
            peaks["driver_rss"] = max(peaks["driver_rss"], driver.memory_info().rss)
            if ray.is_initialized():
                peaks["object_store"] = max(peaks["object_store"], _object_store_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    config = JobConfig(sources=[str(images)], output=out, weights=weights, shard_size=shard_size)
    result = run_job(config, stream=io.StringIO())
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    assert result.exit_code == 0, result.manifest.error
    return {
        "frames": result.manifest.counts.ok,
        "wall_s": round(wall, 1),
        "peak_driver_rss_mib": round(peaks["driver_rss"] / MIB),
        "peak_object_store_mib": round(peaks["object_store"] / MIB),
    }


def _object_store_bytes() -> int:
    """Bytes in the object store across this run's cluster (Ray's internal API: what ``ray memory --stats-only``
    reads), asked by address: with another Ray up on the machine, finding one by itself fails."""
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    try:
        state = get_state_from_address(ray.get_runtime_context().gcs_address)
        return int(get_memory_info_reply(state, timeout_seconds=5).store_stats.object_store_bytes_used)
    except Exception:  # the cluster is shutting down
        return 0


def _report(results: dict[str, dict[str, float]], path: Path) -> None:
    print(f"{'input':<8}{'frames':>8}{'wall s':>9}{'driver RSS MiB':>16}{'object store MiB':>18}")
    for name, r in results.items():
        print(
            f"{name:<8}{r['frames']:>8}{r['wall_s']:>9}{r['peak_driver_rss_mib']:>16}{r['peak_object_store_mib']:>18}"
        )
    small, big = results.values()
    for key in ("peak_driver_rss_mib", "peak_object_store_mib"):
        print(f"{key}: x{big['frames'] / small['frames']:.0f} input -> x{big[key] / max(small[key], 1):.2f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
