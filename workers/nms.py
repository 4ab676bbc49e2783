"""Batched non-maximum suppression on torchvision's compiled kernel, without importing torchvision.

``import torchvision`` costs over a second of CPU (``torchvision.ops`` imports its models and ``torch._dynamo``),
all of it on the path to the first batch of a model actor that loads a trace (which imports no super-gradients,
and so no torchvision), while the NMS kernel itself is a small op library that loads in milliseconds. Per batch
it is no slower: it is the same kernel (``benchmarks/nms.py`` measures both). ``batched_nms`` loads that
library the way torchvision's own ``extension.py`` does and repeats ``torchvision.ops.batched_nms``'s dispatch
(per-group loop for many boxes on a CPU, one call with the groups offset apart otherwise), so it keeps exactly the
boxes torchvision keeps (tested), and so those of super-gradients' ``predict()``.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from pathlib import Path
from typing import Callable

import torch

VANILLA_ABOVE = {"cpu": 4000, "cuda": 100_000}
"""Box coordinates (4 per box) above which torchvision loops over groups instead of offsetting them: the
thresholds of ``torchvision.ops.batched_nms`` (see pytorch/vision#1311 and #8925)."""


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou: float) -> torch.Tensor:
    """Indices of the boxes kept, best score first; boxes of different ``groups`` never suppress each other.

    Same contract and result as ``torchvision.ops.batched_nms(boxes, scores, groups, iou)``."""
    nms = _nms_kernel()
    if boxes.numel() > VANILLA_ABOVE.get(boxes.device.type, VANILLA_ABOVE["cuda"]):
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for group in torch.unique(groups):
            members = torch.where(groups == group)[0]
            keep[members[nms(boxes[members], scores[members], iou)]] = True
        kept = torch.where(keep)[0]
        return kept[scores[kept].sort(descending=True)[1]]
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    offsets = groups.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou)


@functools.cache
def _nms_kernel() -> Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]:
    """``torch.ops.torchvision.nms``, registering torchvision's op library first if no one has yet."""
    if not _registered():
        library = _op_library()
        if library is not None:
            torch.ops.load_library(str(library))
        if not _registered():  # an unusual install: let torchvision find and load its ops itself
            import torchvision  # noqa: F401
    return torch.ops.torchvision.nms


def _registered() -> bool:
    return hasattr(torch.ops.torchvision, "nms")


def _op_library() -> Path | None:
    """torchvision's compiled op library (``_C_stable``, or ``_C`` in older releases), without importing it."""
    spec = importlib.util.find_spec("torchvision")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        for name in ("_C_stable", "_C"):
            for suffix in importlib.machinery.EXTENSION_SUFFIXES:
                if (path := Path(folder) / f"{name}{suffix}").is_file():
                    return path
    return None
