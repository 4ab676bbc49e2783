"""Throughput of the job against super-gradients' own ``predict()`` and the bare fused model, in one run.

    python -m uv run --frozen python benchmarks/throughput.py [--images DIR] [--weights PATH|random] [--json OUT]
        [--skip-job]

Measures on the same photos and weights: (a) ``model.predict(paths, batch_size=B)``, how users run YOLO-NAS;
(b) the bare fused forward on pre-batched tensors (torch, and on a CPU at fp32 ONNX Runtime too: the faster is
the ceiling); (c) ``workers/`` in-process (decode, letterbox, model, NMS, no Ray), one batch after another; the
same with the JPEGs decoded and letterboxed on the model's device (``--decode device``); and pipelined (decoding
in a pool of processes while the model runs, as the job's stages run); (d) the full job on a local Ray, end to
end from a fresh command and at steady state, with its start-up. Prints a table of frames/s with ratios and
writes the numbers as JSON. CPU or GPU is detected; without Ray installed (d) is left out.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from more_itertools import chunked

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.support import copied_images, image_paths, weights_file  # noqa: E402
from schemas.choices import DEFAULT_BATCH_SIZE  # noqa: E402
from workers.decoding import prepare_image  # noqa: E402
from workers.detector import DTYPES, Detector  # noqa: E402
from workers.device_frames import DeviceFrames  # noqa: E402
from workers.frames import FrameBatch, FrameBatchBuilder, payload_columns  # noqa: E402
from workers.letterbox import LetterboxSpec  # noqa: E402
from workers.onnx_runtime import OnnxForward, export_onnx  # noqa: E402
from workers.processing import default_processing_params  # noqa: E402
from workers.quiet import silenced_output, super_gradients_models  # noqa: E402
from workers.runtime_choice import cpu_flags, cpu_model_name  # noqa: E402
from workers.weights import load_weights  # noqa: E402


def _timed(fn, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO / "tests" / "data" / "coco-tiny" / "images")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--model", default="yolo_nas_s")
    parser.add_argument("--batch-size", type=int, help="default: the job's own (8 on CPU, 64 on GPU)")
    parser.add_argument("--precision", choices=sorted(DTYPES), default="fp32", help="ours and the bare forward")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "benchmark.json")
    parser.add_argument(
        "--skip-job",
        action="store_true",
        help="leave out the job's rows (most of a run's time), as where Ray is missing",
    )
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    args.batch_size = args.batch_size or DEFAULT_BATCH_SIZE[device]
    paths = image_paths(args.images)
    n = len(paths)
    weights = load_weights(args.weights, args.model)
    results: dict[str, float] = {}

    model = super_gradients_models().get(args.model, num_classes=weights.num_classes)
    model.load_state_dict(weights.state_dict)
    model.set_dataset_processing_params(**default_processing_params())
    model.to(device)
    with silenced_output():
        results["predict"] = n / _timed(
            lambda: list(model.predict([str(p) for p in paths], batch_size=args.batch_size))
        )

    detector = Detector.from_weights(args.model, weights, LetterboxSpec(), device=device, precision=args.precision)
    frames = [prepare_image(p.read_bytes(), LetterboxSpec()) for p in paths]
    tensors = [
        torch.from_numpy(np.stack([f.image for f in chunk]))
        .permute(0, 3, 1, 2)
        .to(DTYPES[args.precision])
        .div(255)
        .contiguous(memory_format=torch.channels_last)
        .to(device)
        for chunk in chunked(frames, args.batch_size)
    ]

    def forward() -> None:
        with torch.inference_mode():
            for t in tensors:
                detector.model(t)
        if device == "cuda":
            torch.cuda.synchronize()

    results["bare_forward"] = n / _timed(forward)
    if device == "cpu" and args.precision == "fp32":  # the job's other CPU runtime: the faster is the ceiling
        onnx = OnnxForward(export_onnx(args.model, weights, LetterboxSpec()), torch.get_num_threads())
        plain = [t.contiguous() for t in tensors]  # the NCHW layout ONNX Runtime reads, as the job feeds it
        results["bare_forward_onnxruntime"] = n / _timed(lambda: [onnx(t) for t in plain])

    def in_process() -> None:
        for chunk in chunked(paths, args.batch_size):
            detector.detect(_decoded(chunk))

    results["workers_in_process"] = n / _timed(in_process)
    frames_on_device = DeviceFrames(LetterboxSpec(), device)

    def on_device() -> None:  # --decode device: this process only reads the JPEGs, the model's device decodes
        for chunk in chunked(paths, args.batch_size):
            batch, _ = frames_on_device.batch(payload_columns([p.read_bytes() for p in chunk], LetterboxSpec()))
            detector.detect(batch)

    results["workers_device_decode"] = n / _timed(on_device)
    results["decode_per_core"] = n / _timed(lambda: [_decoded(chunk) for chunk in chunked(paths, args.batch_size)])
    results.update(_pipelined(detector, paths, args.batch_size, device))
    if not args.skip_job and importlib.util.find_spec("ray") is not None:
        results.update(_job(paths, args))
    _report(results, n, device, args)


def _decoded(paths: list[Path]) -> FrameBatch:
    """Read, decode and letterbox: the work of the job's CPU stage for one batch, each frame placed as it comes."""
    cv2.setNumThreads(1)  # one thread, as in the job's decode tasks
    spec = LetterboxSpec()
    builder = FrameBatchBuilder(spec, len(paths))
    for path in paths:
        builder.add(prepare_image(path.read_bytes(), spec))
    return builder.build()


def _pipelined(detector: Detector, paths: list[Path], batch_size: int, device: str) -> dict[str, float]:
    """``workers/`` laid out as the job lays it out, without Ray: decoding in a pool of processes (every core but
    the one feeding the model) while the model runs, batches handed over in order. On a GPU the images are read
    ``ceil(PIPELINED_FRAMES / n)`` times over, so the GPU runs long enough for a steady rate."""
    decoders = max(1, (os.cpu_count() or 2) - 1)
    work = paths * (math.ceil(PIPELINED_FRAMES / len(paths)) if device == "cuda" else 1)
    with ProcessPoolExecutor(decoders, mp_context=multiprocessing.get_context("spawn")) as pool:

        def run() -> None:
            for batch in pool.map(_decoded, chunked(work, batch_size)):
                detector.detect(batch)
            if device == "cuda":
                torch.cuda.synchronize()

        return {
            "workers_pipelined": len(work) / _timed(run),
            "pipelined_decoders": decoders,
            "pipelined_frames": len(work),
        }


PIPELINED_FRAMES = 4096
"""Frames the pipelined in-process run pushes through a GPU."""


def _job(paths: list[Path], args: argparse.Namespace) -> dict[str, float]:
    """The full job on a local Ray. First as a person runs it: the command in a fresh process that starts its own
    Ray, once with an empty model cache (the model is exported, as on a machine's first run) and once with it warm
    (a scheduled run); start-up is the time to the first result, from the process's start and from the job's.
    Then in this process, with Ray up, on the images and on ``REPEAT`` copies of them: steady state is the big
    run's rate from its first result on (the rate its summary prints), not the marginal cost of the extra images
    over the small run, which carries the difference of the two runs' start-ups (seconds, on a shared machine)."""
    from common.storage import location
    from jobs.pipeline.ray_session import start_ray
    from jobs.records.run_store import RunStore
    from jobs.runner import run_job
    from schemas.config import JobConfig

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = weights_file(args.weights, args.model, Path(tmp))
        os.environ["YOLONAS_BATCH_CACHE"] = str(Path(tmp) / "cache")
        options = ["--weights", weights, "--model", args.model, "--precision", args.precision]
        options += ["--batch-size", str(args.batch_size), "--shard-size", str(len(paths))]
        for run in ("cold", "warm"):
            folder, out = copied_images(paths, Path(tmp) / f"images-command-{run}", 1), Path(tmp) / f"out-command-{run}"
            command = [sys.executable, "-m", "jobs.detect", str(folder), "--output", str(out), *options]
            subprocess.run(command, cwd=REPO, check=True, capture_output=True)
            store = RunStore(location(str(out)))
            attempt = store.manifest(store.run_ids()[-1]).attempts[-1]
            results[f"command_{run}_process_startup_s"] = attempt.process_startup_s
            results[f"command_{run}_startup_s"] = attempt.startup_s
        results["job_wall_s"] = attempt.wall_s
        results["job_end_to_end"] = len(paths) / (attempt.wall_s or math.inf)
        start_ray(None)  # once for this process, so that it is not part of the first run's wall time
        for run, copies in (("warm", 1), ("warm-big", REPEAT)):
            folder = copied_images(paths, Path(tmp) / f"images-{run}", copies)
            config = JobConfig(
                sources=[str(folder)],
                output=str(Path(tmp) / f"out-{run}"),
                weights=weights,
                model=args.model,
                batch_size=args.batch_size,
                precision=args.precision,
                shard_size=len(paths),
            )
            result = run_job(config, stream=io.StringIO())
            assert result.exit_code == 0 and result.manifest.counts.ok == copies * len(paths), result.manifest.error
            attempt = result.manifest.attempts[-1]
            # The first run on a fresh Ray starts Ray Data's own actors (stats, autoscaling, actor locations),
            # which stay up for later runs, as on a running cluster.
            results["job_ray_up_startup_s" if run == "warm" else "job_ray_warm_startup_s"] = attempt.startup_s
            results["job_steady_state"] = attempt.frames_per_s  # the big run, which comes last, has the say
    return results


REPEAT = 4
"""The big run of the job reads the images this many times (as distinct files)."""


def _cpu_name() -> str:
    """The CPU's model, cores and the widest vector instructions torch uses on it (AVX2, AVX512, ...): bf16 is
    only fast where the CPU has it natively, so a table means little without them."""
    found = cpu_model_name()
    model = found if found != "unknown" else platform.processor() or platform.machine()
    flags = {"avx512_bf16", "amx_bf16"} & cpu_flags()
    native = f", {'/'.join(sorted(flags))}" if flags else ", no native bf16"
    return f"{model}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}{native}"


def _report(results: dict[str, float], n: int, device: str, args: argparse.Namespace) -> None:
    name = torch.cuda.get_device_name() if device == "cuda" else _cpu_name()
    print(
        f"device: {device} ({name}); torch {torch.__version__}; {args.model}; batch {args.batch_size}; "
        f"{args.precision} (predict: fp32); {n} images"
    )
    ceiling = max(results["bare_forward"], results.get("bare_forward_onnxruntime", 0.0))
    print(f"{'path':<26}{'frames/s':>10}{'vs predict':>12}{'vs forward':>12}   (forward: the faster bare forward)")
    for key in (
        "predict",
        "bare_forward",
        "bare_forward_onnxruntime",
        "workers_in_process",
        "workers_device_decode",
        "workers_pipelined",
        "job_steady_state",
        "job_end_to_end",
    ):
        value = results.get(key)
        if value is not None:
            print(f"{key:<26}{value:>10.2f}{value / results['predict']:>11.2f}x{value / ceiling:>11.2f}x")
    print(
        f"decode + letterbox: {results['decode_per_core']:.1f} frames/s on one core; workers_pipelined decoded on "
        f"{results['pipelined_decoders']} processes, {results['pipelined_frames']} frames"
    )
    if "job_wall_s" not in results:
        print("job: not measured" + (" (--skip-job)" if args.skip_job else " (Ray is not installed here)"))
    else:
        r = results
        print(f"job wall time {r['job_wall_s']:.1f}s for {n} images (fresh command, empty model cache)")
        print(
            "time to first result, from the process's start (from the job's start): fresh command "
            f"{r['command_cold_process_startup_s']:.1f}s ({r['command_cold_startup_s']:.1f}s) with the model exported, "
            f"{r['command_warm_process_startup_s']:.1f}s ({r['command_warm_startup_s']:.1f}s) with the model cached; "
            f"Ray already up: ({r['job_ray_up_startup_s']:.1f}s) its first run, "
            f"({r['job_ray_warm_startup_s']:.1f}s) the next"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    summary = {"device": device, "device_name": name, "torch": torch.__version__, "model": args.model}
    summary |= {"batch_size": args.batch_size, "precision": args.precision, "images": n}
    args.json.write_text(json.dumps(summary | results, indent=2))


if __name__ == "__main__":
    main()
