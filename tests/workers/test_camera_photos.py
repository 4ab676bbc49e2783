"""Camera photos (12 MP, EXIF-turned) give super-gradients' own boxes: ``predict()`` on the full image, displayed
upright, against the job's decode, letterbox and model, on the CPU and with ``--decode device``. (How far
``--decode fast`` strays from them is measured by ``benchmarks/decode.py``.)"""

from __future__ import annotations

import cv2
import pytest

from tests.conftest import predict_boxes
from tests.support.parity import agreement, detect_all, mismatches
from workers.detector import Detector
from workers.letterbox import LetterboxSpec
from workers.weights import load_weights

PARITY = 0.97


@pytest.mark.slow
@pytest.mark.parametrize("on_device", [False, True], ids=["cpu-decode", "device-decode"])
def test_camera_photos_give_the_boxes_of_predict_on_the_full_image(
    large, coco_probe_weights, coco_reference_model, on_device
):
    displayed = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in large]  # EXIF applied, as a viewer
    assert all(image.shape[0] * image.shape[1] >= 10_000_000 for image in displayed)
    reference = dict(zip(("file://" + str(p.resolve()) for p in large), predict_boxes(coco_reference_model, displayed)))
    assert sum(map(len, reference.values())) > 0
    detector = Detector.from_weights("yolo_nas_s", load_weights(str(coco_probe_weights), "yolo_nas_s"), LetterboxSpec())

    ours = detect_all(detector, large, LetterboxSpec(), on_device=on_device)

    assert mismatches(ours, reference) == []
    recall, precision = agreement(ours, reference)[0], agreement(reference, ours)[0]
    assert recall >= PARITY and precision >= PARITY
