"""workers/onnx_runtime.py: the exported model on ONNX Runtime gives super-gradients' boxes, like torch does."""

from __future__ import annotations

from pathlib import Path

from tests.support.parity import detect_all, mismatches
from workers.detector import Thresholds
from workers.letterbox import LetterboxSpec
from workers.onnx_runtime import export_onnx, onnx_detector
from workers.weights import load_weights


def test_same_boxes_as_predict(coco_probe_weights: Path, coco_images, coco_reference_predictions):
    data = export_onnx("yolo_nas_s", load_weights(str(coco_probe_weights), "yolo_nas_s"), LetterboxSpec())
    detector = onnx_detector(data, LetterboxSpec(), thresholds=Thresholds(), threads=2)
    ours = detect_all(detector, coco_images, LetterboxSpec(), batch_size=5)
    assert sum(len(v) for v in ours.values()) > 20
    assert mismatches(ours, coco_reference_predictions) == []
