"""workers.nms: exactly torchvision's batched NMS, without importing torchvision."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

from workers.nms import VANILLA_ABOVE, batched_nms

REPO = Path(__file__).resolve().parents[2]


def _clustered_boxes(count: int, groups: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes jittered around a few centres, so many overlap and suppression has work to do."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.rand(12, 2, generator=generator) * 600
    pick = torch.randint(0, 12, (count,), generator=generator)
    xy = centres[pick] + torch.randn(count, 2, generator=generator) * 8
    wh = 20 + torch.rand(count, 2, generator=generator) * 60
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(count, generator=generator)
    return boxes, scores, torch.randint(0, groups, (count,), generator=generator)


@pytest.mark.parametrize("count", [0, 1, 300, VANILLA_ABOVE["cpu"] // 4 + 500])
def test_keeps_what_torchvision_keeps(count):
    """Both of torchvision's paths: offset groups (few boxes) and the per-group loop (many boxes, on a CPU)."""
    boxes, scores, groups = _clustered_boxes(count, groups=7, seed=count)
    ours = batched_nms(boxes, scores, groups, 0.7)
    theirs = torchvision.ops.batched_nms(boxes, scores, groups, 0.7)
    assert torch.equal(ours, theirs)
    if count >= 300:
        assert 0 < len(ours) < count  # suppression happened, and not of everything


def test_groups_do_not_suppress_each_other():
    box = torch.tensor([[10.0, 10.0, 50.0, 50.0]])
    boxes, scores = box.repeat(3, 1), torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 1]), 0.5).tolist() == [0, 2]


def test_torchvision_is_not_imported():
    """The point of the module: a model actor pays milliseconds for NMS, not torchvision's import."""
    code = (
        "import sys, torch\n"
        "from workers.nms import batched_nms\n"
        "kept = batched_nms(torch.tensor([[0., 0., 9., 9.], [1., 1., 9., 9.]]), torch.tensor([.9, .8]), "
        "torch.tensor([0, 0]), 0.5)\n"
        "assert kept.tolist() == [0], kept\n"
        "assert 'torchvision' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)
