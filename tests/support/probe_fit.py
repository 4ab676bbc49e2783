"""The probe's fit: a seeded YOLO-NAS whose class heads are refitted so that its detections depend on the image.

Pretrained COCO weights cannot be downloaded in CI, and a random-init YOLO-NAS scores every box about 0.01, so
with the default threshold (0.25) it detects nothing and a parity test would compare empty lists. Here each
head's ``cls_pred`` (a 1x1 conv) is refitted in closed form (ridge regression) on the features it sees for the
coco-tiny photos, towards "this anchor lies inside a ground-truth box of class c". Per-class calibration then
lets only each class's upper tail pass 0.25. The result reacts to image content, so swapped colour channels or
a shifted letterbox change the detections, which is what the parity tests need to be able to fail.

The fit changes only the seeded model's BatchNorm statistics and ``cls_pred`` convolutions. What it changed is kept
in the repository (``tests/support/probe_weights.py``), so that a fresh clone rebuilds the probe without the fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[1] / "data" / "coco-tiny"
RIDGE = 1e-2
PASSING_PER_INSTANCE = 0.5
"""Anchors per head allowed above the 0.25 threshold, per ground-truth instance of the class."""
MAX_SCORE = 0.9
VAR_FLOOR = 0.05


def seeded_model(model_name: str, seed: int) -> torch.nn.Module:
    """The architecture as super-gradients initialises it after ``torch.manual_seed(seed)``: the probe's start."""
    from workers.quiet import super_gradients_models

    torch.manual_seed(seed)
    return super_gradients_models().get(model_name, num_classes=80).eval()


def fit_probe(model: torch.nn.Module, data: Path = DATA) -> torch.nn.Module:
    """``model`` (from ``seeded_model``) with its BatchNorm statistics and class heads fitted on coco-tiny."""
    from PIL import Image

    from workers.letterbox import LetterboxSpec, letterbox
    from workers.processing import default_processing_params

    processor = default_processing_params()["image_processor"]
    images, boxes = _coco_tiny(data)
    inputs, targets = [], []
    for image_path in images:
        rgb = np.asarray(Image.open(image_path).convert("RGB"))
        tensor, _ = processor.preprocess_image(rgb.copy())
        inputs.append(torch.from_numpy(tensor))
        placed = letterbox(rgb, LetterboxSpec())
        offset = np.array([placed.pad_left, placed.pad_top] * 2)
        targets.append([(np.array(b) * placed.scale + offset, c) for b, c in boxes[image_path.name]])
    # Channels-last runs the two passes over the photos about a third faster on CPUs (as the job's detector does).
    model = model.to(memory_format=torch.channels_last)
    batch = torch.stack(inputs).contiguous(memory_format=torch.channels_last)
    _recalibrate_batch_norm(model, batch)
    heads = [getattr(model.heads, f"head{i + 1}") for i in range(model.heads.num_heads)]
    features = _head_inputs(model, heads, batch)
    for head, stride, feats in zip(heads, model.heads.fpn_strides, features):
        _fit_head(head.cls_pred, feats, targets, stride)
    return model.to(memory_format=torch.contiguous_format)


def _coco_tiny(data: Path) -> tuple[list[Path], dict[str, list[tuple[list[float], int]]]]:
    """Image paths (sorted) and their boxes as ``([x1, y1, x2, y2], contiguous class index)``."""
    boxes: dict[str, list] = {}
    for split in ("train2017", "val2017"):
        coco = json.loads((data / "annotations" / f"instances_{split}.json").read_text())
        category_index = {c["id"]: i for i, c in enumerate(sorted(coco["categories"], key=lambda c: c["id"]))}
        names = {img["id"]: img["file_name"] for img in coco["images"]}
        for name in names.values():
            boxes.setdefault(name, [])
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            boxes[names[ann["image_id"]]].append(([x, y, x + w, y + h], category_index[ann["category_id"]]))
    return sorted(data.glob("images/*/*.jpg")), boxes


@torch.no_grad()
def _recalibrate_batch_norm(model: torch.nn.Module, batch: torch.Tensor) -> None:
    """Set BatchNorm running statistics from real photos, so activations keep a unit scale through the network.

    With random statistics the activations grow layer by layer and the network amplifies float rounding
    (a fused and an unfused model then disagree by several hundredths in score), which would make any parity
    check flaky. Measured statistics, with a floor on the variance, keep it well-conditioned.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    model.train()
    for chunk in batch.split(8):
        model(chunk)
    model.eval()
    for norm in norms:  # near-constant channels would divide by ~sqrt(eps) and amplify rounding again
        norm.running_var.clamp_(min=VAR_FLOOR)


@torch.inference_mode()
def _head_inputs(model: torch.nn.Module, heads: list, batch: torch.Tensor) -> list[np.ndarray]:
    """The input of each head's ``cls_pred`` as (images, H, W, C) float64 arrays."""
    captured: list[list[torch.Tensor]] = [[] for _ in heads]
    hooks = [
        head.cls_pred.register_forward_pre_hook(lambda _m, args, i=i: captured[i].append(args[0].clone()))
        for i, head in enumerate(heads)
    ]
    try:
        for chunk in batch.split(8):
            model(chunk)
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(c).permute(0, 2, 3, 1).double().numpy() for c in captured]


def _fit_head(cls_pred: torch.nn.Conv2d, feats: np.ndarray, targets: list, stride: int) -> None:
    """Ridge-fit ``cls_pred`` on ``feats`` towards in-box indicators, then calibrate each class's tail."""
    n, h, w, c = feats.shape
    num_classes = cls_pred.out_channels
    ys, xs = np.meshgrid((np.arange(h) + 0.5) * stride, (np.arange(w) + 0.5) * stride, indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel()], axis=1)
    y = np.zeros((n, h * w, num_classes))
    instances = np.zeros(num_classes, dtype=int)
    for i, image_targets in enumerate(targets):
        for box, cls in image_targets:
            instances[cls] += 1
            inside = (
                (points[:, 0] >= box[0])
                & (points[:, 0] <= box[2])
                & (points[:, 1] >= box[1])
                & (points[:, 1] <= box[3])
            )
            y[i, inside, cls] = 1.0
    x = feats.reshape(-1, c)
    y = y.reshape(-1, num_classes)
    # Centred but not scaled: near-constant channels must get small weights, or they would amplify rounding.
    mean = x.mean(0)
    xs_ = np.concatenate([x - mean, np.ones((len(x), 1))], axis=1)
    gram = xs_.T @ xs_
    gram += RIDGE * np.trace(gram) / (c + 1) * np.eye(c + 1)
    coef = np.linalg.solve(gram, xs_.T @ y)  # (c + 1, classes)
    scores = xs_ @ coef
    weight = np.zeros((num_classes, c))
    bias = np.full(num_classes, -20.0)  # classes never seen here stay silent
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    for k in range(num_classes):
        if instances[k] == 0 or not y[:, k].any():
            continue
        ranked = np.sort(scores[:, k])[::-1]
        passing = max(1, int(instances[k] * PASSING_PER_INSTANCE))
        threshold = (ranked[passing - 1] + ranked[passing]) / 2  # midway: the widest margin against rounding
        a = (logit(MAX_SCORE) - logit(0.25)) / (3 * scores[:, k].std())
        # score = sigmoid(a * (s - threshold) + logit(0.25)), folded into the conv on raw features
        weight[k] = a * coef[:c, k]
        bias[k] = a * (coef[c, k] - threshold - coef[:c, k] @ mean) + logit(0.25)
    with torch.no_grad():
        cls_pred.weight.copy_(torch.from_numpy(weight).view_as(cls_pred.weight))
        cls_pred.bias.copy_(torch.from_numpy(bias))
