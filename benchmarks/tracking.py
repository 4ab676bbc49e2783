"""How fast ``track`` tracks a video on one core, and how well, on synthetic ground truth.

    python3 -m uv run --frozen python benchmarks/tracking.py [--frames 5000] [--objects 5,20,50]
        [--video-frames 10000] [--video-objects 20] [--shards 10] [--seeds 12] [--json out/tracking.json]

Speed, with math libraries held to one thread, so frames/s is per core:

- the tracker alone: ``VideoTracker`` fed ``--frames`` frames of in-memory ``FrameBoxes``, for each of
  ``--objects`` objects per frame (``tests/support/tracking_truth.crowd``: objects on random straight paths, each
  seen 100–300 frames, plus the detector's faults: jitter, one box in ten missed, false positives);
- the whole of one ``track`` task: ``plan_videos`` and ``track_video`` (DuckDB reads the committed detections,
  the tracker, the Parquet files and the marker written) on a ``--video-frames`` video of ``--video-objects``
  objects committed by the job's own code in ``--shards`` shards (frame ranges).

Quality: the street scene of ``tests/support/tracking_truth.street`` (8 objects, 250 frames: crossings, one
leaving, one entering, an occlusion) every frame and every third frame, tracked as ``track`` does, scored with
``motmetrics``: IDF1, MOTA, identity switches, fragmentations (every interruption of an object's track,
missed boxes included) and objects followed by more than one track id; seed 0, and the range over ``--seeds``
seeds of the detector's faults. Prints markdown tables and writes JSON. Results: docs/performance.md#tracking.
"""

from __future__ import annotations

import os

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_threads] = "1"  # before numpy is imported: one core's rate

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.storage import location  # noqa: E402
from schemas.track_config import TrackerSettings  # noqa: E402
from tests.support.outputs import CLASS_NAMES, VIDEO_FPS, Frame  # noqa: E402
from tests.support.tracking_truth import commit_shards, crowd, score, street, synthetic, track_output  # noqa: E402
from workers.tracker import FrameBoxes, VideoTracker  # noqa: E402

STREET_FRAMES = 250
STRIDES = (1, 3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=5000, help="frames fed to the tracker alone")
    parser.add_argument("--objects", default="5,20,50", help="objects per frame; several, comma-separated")
    parser.add_argument("--video-frames", type=int, default=10_000, help="frames of the video tracked by track_video")
    parser.add_argument("--video-objects", type=int, default=20)
    parser.add_argument("--shards", type=int, default=10, help="shards (frame ranges) the video is committed in")
    parser.add_argument("--seeds", type=int, default=12, help="seeds of the detector's faults for the quality range")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "tracking.json")
    args = parser.parse_args(argv)
    results = {
        "tracker": [_tracker_speed(int(n), args.frames) for n in args.objects.split(",")],
        "track_video": _track_video_speed(args.video_objects, args.video_frames, args.shards),
        "quality": [_quality(stride, args.seeds) for stride in STRIDES],
    }
    _report(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))


def _tracker_speed(objects: int, frames: int) -> dict[str, float]:
    """``VideoTracker`` alone over in-memory frames: updates and ``finish``, nothing read or written."""
    fed = [_frame_boxes(frame) for frame in synthetic(crowd(objects, frames), frames).frames]
    started, cpu = time.perf_counter(), time.process_time()
    tracker = VideoTracker(TrackerSettings(), VIDEO_FPS)
    for frame in fed:
        tracker.update(frame)
    rows = tracker.finish()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "objects": objects,
        "frames": frames,
        "boxes_per_frame": round(sum(len(f.scores) for f in fed) / frames, 1),
        "tracks": rows.tracks,
        "wall_s": round(wall, 2),
        "frames_per_s": round(frames / wall),
        "cpu_share": round(cpu / wall, 2),
    }


def _frame_boxes(frame: Frame) -> FrameBoxes:
    boxes = frame.boxes
    return FrameBoxes(
        frame_index=frame.index,
        timestamp_s=frame.index / VIDEO_FPS,
        class_ids=np.asarray([CLASS_NAMES.index(b[0]) for b in boxes], np.int32),
        scores=np.asarray([b[1] for b in boxes], np.float32),
        boxes=np.asarray([b[2:] for b in boxes], np.float32).reshape(-1, 4),
    )


def _track_video_speed(objects: int, frames: int, shards: int) -> dict[str, float]:
    """One ``track`` task's work on a committed video: plan, read, track, write."""
    made = synthetic(crowd(objects, frames), frames)
    with tempfile.TemporaryDirectory() as tmp:
        out = location(str(Path(tmp) / "out"))
        commit_shards(out, made.frames, shards)
        started, cpu = time.perf_counter(), time.process_time()
        commit, _ = track_output(out)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "objects": objects,
        "frames": commit.frames,
        "shards": len(commit.inputs),
        "detections": commit.detections,
        "tracks": commit.tracks,
        "wall_s": round(wall, 2),
        "frames_per_s": round(commit.frames / wall),
        "cpu_share": round(cpu / wall, 2),
    }


def _quality(stride: int, seeds: int) -> dict[str, float]:
    """The street scene at ``stride``, committed in two shards split mid-video and tracked as ``track`` does."""
    scores = []
    for seed in range(seeds):
        made = synthetic(street(STREET_FRAMES), STREET_FRAMES, stride, seed)
        with tempfile.TemporaryDirectory() as tmp:
            out = location(str(Path(tmp) / "out"))
            commit_shards(out, made.frames, 2)
            scores.append(score(made.truth, track_output(out)[1]))
    first, idf1 = scores[0], [s.idf1 for s in scores]
    return {
        "stride": stride,
        "frames": len(made.frames),
        "objects": first.objects,
        "tracks": first.tracks,
        "idf1": round(first.idf1, 3),
        "mota": round(first.mota, 3),
        "switches": first.switches,
        "fragmentations": first.fragmentations,
        "split_objects": len(first.fragmented),
        "seeds": seeds,
        "idf1_min": round(min(idf1), 3),
        "idf1_max": round(max(idf1), 3),
        "mota_mean": round(float(np.mean([s.mota for s in scores])), 3),
        "switches_all": sum(s.switches for s in scores),
        "split_objects_all": sum(len(s.fragmented) for s in scores),
    }


def _report(results: dict) -> None:
    _table(
        ["tracker alone: objects per frame", "boxes per frame", "frames", "tracks", "frames/s (one core)"],
        [
            [r["objects"], r["boxes_per_frame"], f"{r['frames']:,}", r["tracks"], f"{r['frames_per_s']:,}"]
            for r in results["tracker"]
        ],
    )
    v = results["track_video"]
    _table(
        ["track_video: frames", "shards", "detections", "tracks", "wall s", "frames/s", "CPU of one core"],
        [
            [
                f"{v['frames']:,}",
                v["shards"],
                f"{v['detections']:,}",
                v["tracks"],
                v["wall_s"],
                f"{v['frames_per_s']:,}",
                f"{v['cpu_share']:.0%}",
            ]
        ],
    )
    seeds = results["quality"][0]["seeds"]
    _table(
        [
            "stride",
            "frames",
            "objects",
            "tracks",
            "IDF1",
            "MOTA",
            "ID switches",
            "fragmentations",
            "split objects",
            f"IDF1 over {seeds} seeds",
            "MOTA mean",
            f"switches, split objects over {seeds} seeds",
        ],
        [
            [
                q["stride"],
                q["frames"],
                q["objects"],
                q["tracks"],
                f"{q['idf1']:.3f}",
                f"{q['mota']:.3f}",
                q["switches"],
                q["fragmentations"],
                q["split_objects"],
                f"{q['idf1_min']:.3f}–{q['idf1_max']:.3f}",
                f"{q['mota_mean']:.3f}",
                f"{q['switches_all']}, {q['split_objects_all']}",
            ]
            for q in results["quality"]
        ],
    )


def _table(headers: list[str], rows: list[list[object]]) -> None:
    """A markdown table, ready for docs/performance.md."""
    print("\n| " + " | ".join(headers) + " |")
    print("|" + "---|" * len(headers))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
