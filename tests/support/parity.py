"""Compare detections box by box: same class, IoU >= 0.9, score within 0.02, nothing left unmatched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from more_itertools import chunked

from workers.decoding import prepare_image
from workers.detector import Detector
from workers.device_frames import DeviceFrames
from workers.frames import FrameBatch, payload_columns
from workers.letterbox import LetterboxSpec


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(np.allclose(a, b))


def mismatches(
    ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], min_iou: float = 0.9, max_score_diff: float = 0.02
) -> list[str]:
    """Frames whose boxes differ. Each value is an (N, 6) array: x1, y1, x2, y2, score, class_id."""
    problems = []
    for key in sorted(set(ours) | set(reference)):
        a = ours.get(key, np.zeros((0, 6)))
        b = reference.get(key, np.zeros((0, 6)))
        if len(a) != len(b):
            problems.append(f"{key}: {len(a)} boxes vs {len(b)} in the reference")
            continue
        unmatched = list(range(len(a)))
        for ref in b:
            candidates = [i for i in unmatched if a[i][5] == ref[5] and abs(a[i][4] - ref[4]) <= max_score_diff]
            best = max(candidates, key=lambda i: iou(a[i], ref), default=None)
            if best is None or iou(a[best], ref) < min_iou:
                problems.append(f"{key}: no match for reference box {np.round(ref, 3).tolist()}")
                break
            unmatched.remove(best)
    return problems


def clip_boxes(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Clip (N, 4+) xyxy boxes to an image, as the job's output contract does."""
    out = boxes.copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, width)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, height)
    return out


def agreement(
    ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], min_iou: float = 0.5
) -> tuple[float, float]:
    """For a reduced precision: the share of reference boxes matched (same class, IoU >= ``min_iou``, each box
    used once, greedily by IoU) and the mean IoU of the matches."""
    matched, total, ious = 0, 0, []
    for key, refs in reference.items():
        candidates = ours.get(key, np.zeros((0, 6)))
        used: set[int] = set()
        for ref in refs:
            total += 1
            scored = [(iou(box, ref), i) for i, box in enumerate(candidates) if i not in used and box[5] == ref[5]]
            best = max(scored, default=(0.0, -1))
            if best[0] >= min_iou:
                matched += 1
                used.add(best[1])
                ious.append(best[0])
    return matched / max(total, 1), float(np.mean(ious)) if ious else 0.0


def detect_all(
    detector: Detector, images: list[Path], spec: LetterboxSpec, batch_size: int = 8, on_device: bool = False
) -> dict[str, np.ndarray]:
    """``detector`` over ``images`` in batches, as the parity check takes it: per image URI an (N, 6) array.
    ``on_device``: JPEGs decoded and letterboxed on the detector's device (``--decode device``)."""
    results = {}
    for chunk in chunked(images, batch_size):
        found = detector.detect(_device_batch(chunk, spec, detector) if on_device else _cpu_batch(chunk, spec))
        rows = np.concatenate([found.boxes, found.scores[:, None], found.class_ids[:, None].astype(np.float32)], axis=1)
        for i, path in enumerate(chunk):
            results["file://" + str(path.resolve())] = rows[found.frame == i]
    return results


def _cpu_batch(images: list[Path], spec: LetterboxSpec) -> FrameBatch:
    return FrameBatch.stack([prepare_image(p.read_bytes(), spec) for p in images])


def _device_batch(images: list[Path], spec: LetterboxSpec, detector: Detector) -> FrameBatch:
    batch, failed = DeviceFrames(spec, detector.device).batch(payload_columns([p.read_bytes() for p in images], spec))
    assert failed == {}
    return batch
