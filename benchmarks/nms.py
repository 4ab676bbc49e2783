"""What ``workers.nms`` saves against ``torchvision.ops.batched_nms``: the import, not the time per batch.

    python3 -m uv run --frozen python benchmarks/nms.py [--images 8] [--candidates 3000] [--repeat 60]

Per batch: ``--images`` frames of ``--candidates`` boxes each above the score threshold, clustered around 30
objects a frame (one class an object, one box in ten of another class), each frame's best 1024 kept as the
detector keeps them (``Thresholds.nms_top_k``), then suppressed both ways, interleaved so that both see the same
load, on one thread; the kept boxes are checked equal. Start-up: each way's first call in a fresh interpreter
that has imported torch, as a TorchScript or ONNX Runtime model actor makes it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from workers.detector import Thresholds  # noqa: E402
from workers.nms import batched_nms  # noqa: E402

OBJECTS = 30
CLASSES = 80
FIRST_CALL = """
import time, torch
started, cpu = time.perf_counter(), time.process_time()
from {module} import batched_nms
batched_nms(torch.tensor([[0., 0., 9., 9.], [1., 1., 9., 9.]]), torch.tensor([.9, .8]), torch.tensor([0, 0]), .5)
print(time.perf_counter() - started, time.process_time() - cpu)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=3000, help="boxes above the score threshold per image")
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    import torchvision.ops

    torch.set_num_threads(1)
    boxes, scores, groups = candidates(args.images, args.candidates)
    iou = Thresholds().iou
    ways: dict[str, Callable[[], torch.Tensor]] = {
        "workers.nms": lambda: batched_nms(boxes, scores, groups, iou),
        "torchvision.ops": lambda: torchvision.ops.batched_nms(boxes, scores, groups, iou),
    }
    kept = [way() for way in ways.values()]
    assert all(torch.equal(kept[0], other) for other in kept[1:]), "the two ways keep different boxes"
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeat):
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - started)
    print(f"{len(boxes)} boxes into NMS ({args.images} images, {len(groups.unique())} groups), {len(kept[0])} kept")
    print("| way | per batch, median ms | min ms | first call in a fresh process: wall s | CPU s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in ways:
        median, least = statistics.median(times[name]) * 1e3, min(times[name]) * 1e3
        wall, cpu = first_call(name)
        print(f"| {name} | {median:.2f} | {least:.2f} | {wall:.3f} | {cpu:.3f} |")


def candidates(images: int, per_image: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes, scores and NMS groups (frame x class) as ``workers.detector`` hands them to NMS."""
    generator = torch.Generator().manual_seed(0)
    count = images * per_image
    frame = torch.arange(images).repeat_interleave(per_image)
    owner = frame * OBJECTS + torch.randint(0, OBJECTS, (count,), generator=generator)
    centres = torch.rand(images * OBJECTS, 2, generator=generator) * 560
    sizes = 20 + torch.rand(images * OBJECTS, 2, generator=generator) * 200
    xy = centres[owner] + torch.randn(count, 2, generator=generator) * 6
    wh = (sizes[owner] * (1 + 0.1 * torch.randn(count, 2, generator=generator))).clamp(min=4)
    scores = Thresholds().conf + (1 - Thresholds().conf) * torch.rand(count, generator=generator)
    classes = torch.randint(0, CLASSES, (images * OBJECTS,), generator=generator)[owner]
    other = torch.rand(count, generator=generator) < 0.1
    classes = torch.where(other, torch.randint(0, CLASSES, (count,), generator=generator), classes)
    order = torch.argsort(frame.double() * 2.0 - scores.double())  # by frame, best first, as the detector ranks
    order = order[torch.arange(count) - frame[order] * per_image < Thresholds().nms_top_k]
    return torch.cat([xy, xy + wh], 1)[order], scores[order], (frame * CLASSES + classes)[order]


def first_call(module: str) -> tuple[float, float]:
    """Wall and CPU seconds from importing ``module``'s ``batched_nms`` to its first result, in a fresh interpreter."""
    code = FIRST_CALL.format(module=module)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    wall, cpu = result.stdout.split()[-2:]
    return float(wall), float(cpu)


if __name__ == "__main__":
    main()
