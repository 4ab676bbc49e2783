"""Shared, session-wide test fixtures: data, test weights, one local Ray cluster, one reference run.

Expensive things happen once per session: the probe weights are cached on disk between sessions (keyed by the
code that makes them), super-gradients' reference predictions and the job's run over coco-tiny are computed
once and shared by every test that checks them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.once import made_once, one_worker, shared

pytest_plugins = ["tests.support.s3", "tests.support.postgres"]
"""The S3 API server fixtures (one moto server per session) and the PostgreSQL server's (one per session, started by
the first test that asks), available to every test module."""

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "coco-tiny"
CACHE = REPO / ".cache" / "test-weights"
os.environ.setdefault("YOLONAS_BATCH_CACHE", str(REPO / ".cache" / "models"))
"""Traced models the jobs under test keep between runs (``workers/trace_cache.py``): here, not in ``~/.cache``."""

SLOW_FIXTURES = frozenset({"ray_cluster", "two_node", "reference_predictions", "coco_reference_predictions"})
"""A test using one of these starts Ray or runs super-gradients' ``predict()`` over every photo."""


XDIST_GROUPS = {"ray_cluster": "session-ray", "two_node": "two-node"}
"""The pytest-xdist worker each test runs on (``--dist loadgroup``, pyproject.toml): every test on the session's
Ray on one worker, so that one Ray starts, and the two tests on the two-node cluster together, so that it starts
once; the rest (most of them Ray-free) runs on the other worker meanwhile, using the CPU the whole-job tests leave
idle while their processes start."""


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the items
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tests by what they use, so ``-m "not slow"`` is a fast subset without a list to keep up, and
    group the tests that share a Ray on one worker."""
    benchmarks = REPO / "tests" / "benchmarks"
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SLOW_FIXTURES or benchmarks in item.path.parents:
            item.add_marker(pytest.mark.slow)
        for fixture, group in XDIST_GROUPS.items():
            if fixture in fixtures:
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def coco_images() -> list[Path]:
    """The 38 real COCO photos, sorted."""
    images = sorted(DATA.glob("images/*/*.jpg"))
    assert len(images) == 38, f"expected 38 coco-tiny photos under {DATA}"
    return images


@pytest.fixture(scope="session")
def coco_probe_weights() -> Path:
    """A yolo_nas_s checkpoint whose detections depend on the image (``tests/support/probe_fit.py``), without
    ``processing_params``: it runs with super-gradients' COCO preprocessing at 640, the job's default."""
    from tests.support import probe_fit, probe_weights

    code = b"".join(Path(module.__file__).read_bytes() for module in (probe_fit, probe_weights))
    path = CACHE / f"probe-yolo_nas_s-{hashlib.sha256(code).hexdigest()[:12]}.pth"
    return made_once(
        path, lambda partial: probe_weights.make_probe_checkpoint(partial, model_name="yolo_nas_s", seed=0)
    )


@pytest.fixture(scope="session")
def probe_weights(coco_probe_weights: Path) -> Path:
    """The probe's tensors in a checkpoint carrying its own ``processing_params``: a 320 x 320 canvas
    (``tests/support/probe_weights.py``). The whole-job tests run on it, reading the checkpoint's preprocessing as
    for a fine-tuned model, at a quarter of the model's cost at 640."""
    from tests.support.probe_weights import with_small_canvas

    path = coco_probe_weights.with_name(coco_probe_weights.stem + "-small.pth")
    return made_once(path, lambda partial: with_small_canvas(coco_probe_weights, partial))


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local Ray for the whole session, started the way the job starts it, on one pytest-xdist worker."""
    import ray

    one_worker(tmp_path_factory, "the session's Ray")

    from jobs.pipeline.ray_session import start_ray  # before Ray: the jobs package sets how Ray starts workers

    start_ray(None)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def coco_reference_model(coco_probe_weights: Path):
    """super-gradients' own yolo_nas_s with the probe weights, set up the way users call ``predict()`` on COCO
    weights (its COCO preprocessing at 640)."""
    return _coco_reference_model(coco_probe_weights)


def _coco_reference_model(weights: Path):
    import torch

    from workers.processing import default_processing_params
    from workers.quiet import super_gradients_models

    model = super_gradients_models().get("yolo_nas_s", num_classes=80)
    model.load_state_dict(torch.load(weights, weights_only=True)["net"])
    model.set_dataset_processing_params(**default_processing_params())
    return model


@pytest.fixture(scope="session")
def reference_model(probe_weights: Path):
    """super-gradients' own yolo_nas_s loaded from the small-canvas checkpoint as users load a checkpoint
    (``models.get(…, checkpoint_path=…)``), which sets the preprocessing the checkpoint carries."""
    return _reference_model(probe_weights)


def _reference_model(weights: Path):
    from workers.quiet import super_gradients_models

    return super_gradients_models().get("yolo_nas_s", num_classes=80, checkpoint_path=str(weights))


def predict_boxes(model, images: list) -> list[np.ndarray]:
    """``model.predict()`` on paths or RGB arrays: per image an (N, 6) array (xyxy, score, class) clipped to it."""
    from tests.support.parity import clip_boxes

    result = []
    for prediction in model.predict(images, conf=0.25, iou=0.7, batch_size=8):
        p = prediction.prediction
        height, width = prediction.image.shape[:2]
        boxes = np.concatenate([p.bboxes_xyxy, p.confidence[:, None], p.labels[:, None]], axis=1)
        result.append(clip_boxes(boxes, width, height))
    return result


def _predictions_by_uri(model, images: list[Path]) -> dict[str, np.ndarray]:
    """``predict_boxes`` over ``images``: file URI -> (N, 6) boxes; something must be detected."""
    boxes = predict_boxes(model, [str(p) for p in images])
    result = {"file://" + str(path.resolve()): b for path, b in zip(images, boxes)}
    assert sum(len(v) for v in result.values()) > 0, "the probe weights must detect something"
    return result


@pytest.fixture(scope="session")
def coco_reference_predictions(tmp_path_factory, coco_probe_weights: Path, coco_images: list[Path]):
    """super-gradients' own ``model.predict()`` on coco-tiny at 640: file URI -> (N, 6) boxes clipped to the image.
    Once per test run, whichever worker asks first."""

    def predict() -> dict[str, np.ndarray]:
        return _predictions_by_uri(_coco_reference_model(coco_probe_weights), coco_images)

    return shared(tmp_path_factory, "coco-reference", predict)


@pytest.fixture(scope="session")
def reference_predictions(tmp_path_factory, probe_weights: Path, coco_images: list[Path]) -> dict[str, np.ndarray]:
    """super-gradients' own ``model.predict()`` on coco-tiny with the small-canvas checkpoint (``probe_weights``)."""

    def predict() -> dict[str, np.ndarray]:
        return _predictions_by_uri(_reference_model(probe_weights), coco_images)

    return shared(tmp_path_factory, "reference", predict)


def copy_tree_with_awkward_names(images: list[Path], target: Path) -> dict[str, Path]:
    """Copy photos into nested folders with spaces and non-ASCII names; returns new file URI -> original."""
    folders = [target / "camera one" / "день 1", target / "camera one" / "día 2", target / "ünïcode dir"]
    mapping = {}
    for i, image in enumerate(images):
        folder = folders[i % len(folders)]
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".JPG" if i % 5 == 0 else ".jpg"
        copy = folder / f"photo {i:02d} — {image.stem}{suffix}"
        shutil.copyfile(image, copy)
        mapping["file://" + str(copy.resolve())] = image
    return mapping


@pytest.fixture(scope="session")
def camera_sized(coco_images) -> list[Path]:
    """Four photos whose long side is 640: 4032 px upscaled, 12 MP or close."""
    import cv2

    return [p for p in coco_images if max(cv2.imread(str(p)).shape[:2]) == 640][:4]


@pytest.fixture(scope="session")
def large(tmp_path_factory, camera_sized) -> list[Path]:
    """``camera_sized`` as 12 MP JPEGs, stored turned under EXIF orientations 1, 3, 6 and 8."""
    from tests.support.photos import large_photos

    return large_photos(tmp_path_factory.mktemp("large"), camera_sized)
