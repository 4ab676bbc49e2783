"""The COCO export: pycocotools loads the dataset and takes the results list, with the counts and boxes of the
Parquet (read independently with DuckDB), every ``ok`` frame once, frames without boxes included."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from exports.run import run_export
from schemas.export_config import ExportConfig
from tests.exports.conftest import output_rows
from tests.support.two_runs import RUN_A

DATASET = "annotations/instances_default.json"


def export(output: Any, to: Path, **options: Any) -> Path:
    config = ExportConfig(output=str(output), format="coco", to=str(to), **options)
    run_export(config, stream=io.StringIO())
    return to


@pytest.fixture(scope="module")
def coco_export(job_output, tmp_path_factory) -> Path:
    return export(job_output.out, tmp_path_factory.mktemp("coco") / "export", results=True)


def test_pycocotools_loads_the_dataset_with_the_parquets_counts(coco_export, job_output):
    coco = COCO(str(coco_export / DATASET))
    (ok,) = output_rows(job_output.out, "select count(*) from {frames} where status = 'ok'")[0]
    (boxes,) = output_rows(job_output.out, "select count(*) from {detections}")[0]
    assert len(coco.getImgIds()) == ok
    assert len(coco.getAnnIds()) == boxes > 0
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert min(names) == 1 and len(names) == 80 and names[1] == "person", "category ids from 1, never 0"


def test_every_ok_frame_once_and_frames_without_boxes_have_none(coco_export, job_output):
    coco = COCO(str(coco_export / DATASET))
    images = coco.loadImgs(coco.getImgIds())
    per_frame = dict(
        ((uri, index), n)
        for uri, index, n in output_rows(
            job_output.out, "select source_uri, frame_index, num_detections from {frames} where status = 'ok'"
        )
    )
    keys = [(image["source_uri"], image.get("frame_index", 0)) for image in images]
    assert sorted(keys) == sorted(per_frame) and len(set(image["file_name"] for image in images)) == len(images)
    for image, key in zip(images, keys):
        assert len(coco.getAnnIds(imgIds=[image["id"]])) == per_frame[key]
    assert any(n == 0 for n in per_frame.values()), "the inputs hold a frame without boxes"
    blank = next(image for image in images if image["file_name"] == "blank.png")
    assert (blank["width"], blank["height"], coco.getAnnIds(imgIds=[blank["id"]])) == (160, 120, [])
    video = sorted(image["file_name"] for image in images if "frame_index" in image)
    assert video == [f"clips/clip.mp4/frame_{i:06d}.jpg" for i in range(6)]


def test_boxes_are_the_parquets_in_xywh_pixels_with_scores(coco_export, job_output):
    coco = COCO(str(coco_export / DATASET))
    images = {image["id"]: image for image in coco.loadImgs(coco.getImgIds())}
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    got = sorted(
        (
            images[a["image_id"]]["source_uri"],
            images[a["image_id"]].get("frame_index", 0),
            names[a["category_id"]],
            a["score"],
            a["bbox"][0],
            a["bbox"][1],
            a["bbox"][0] + a["bbox"][2],
            a["bbox"][1] + a["bbox"][3],
        )
        for a in coco.loadAnns(coco.getAnnIds())
    )
    want = sorted(
        output_rows(
            job_output.out, "select source_uri, frame_index, class_name, score, x1, y1, x2, y2 from {detections}"
        )
    )
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert g[3] == pytest.approx(w[3], abs=1e-6)
        assert g[4:] == pytest.approx(w[4:], abs=0.002)
    assert all(a["iscrowd"] == 0 and a["area"] > 0 for a in coco.loadAnns(coco.getAnnIds()))


def test_loadres_takes_the_results_and_they_score_perfectly_against_the_dataset(coco_export):
    coco = COCO(str(coco_export / DATASET))
    results = coco.loadRes(str(coco_export / "results_default.json"))
    assert len(results.getAnnIds()) == len(coco.getAnnIds())
    evaluation = COCOeval(coco, results, "bbox")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0), "the same boxes as results must match themselves exactly"


def test_splits_are_one_dataset_each_and_the_same_every_time(job_output, tmp_path):
    first = export(job_output.out, tmp_path / "one", split={"train": 0.5, "val": 0.5})
    second = export(job_output.out, tmp_path / "two", split={"train": 0.5, "val": 0.5})
    for name in ("train", "val"):
        path = f"annotations/instances_{name}.json"
        assert (first / path).read_bytes() == (second / path).read_bytes(), "deterministic"
    train = COCO(str(first / "annotations/instances_train.json"))
    val = COCO(str(first / "annotations/instances_val.json"))
    uris = [{i["source_uri"] for i in c.loadImgs(c.getImgIds())} for c in (train, val)]
    assert not uris[0] & uris[1], "an input, and so every frame of a video, is in one split"
    assert len(train.getImgIds()) + len(val.getImgIds()) == len(
        COCO(str(export(job_output.out, tmp_path / "all") / DATASET)).getImgIds()
    )
    assert not set(train.getImgIds()) & set(val.getImgIds()), "image ids are unique across the splits"


def test_classes_and_min_score_select_the_boxes_the_parquet_has(synthetic_output, tmp_path):
    to = export(
        synthetic_output.path,
        tmp_path / "x",
        run_id=RUN_A,
        classes={"car": "vehicle", "truck": "vehicle", "person": None},
        min_score=0.5,
    )
    coco = COCO(str(to / DATASET))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["vehicle", "person"]
    (expected,) = output_rows(
        synthetic_output.path,
        f"""select count(*) from {{detections}} where run_id = '{RUN_A}' and score >= 0.5
            and class_name in ('car', 'truck', 'person')""",
    )[0]
    assert len(coco.getAnnIds()) == expected == 2
    assert sorted(a["category_id"] for a in coco.loadAnns(coco.getAnnIds())) == [1, 2]


def test_error_frames_are_images_without_boxes_when_asked(synthetic_output, tmp_path):
    data = json.loads((export(synthetic_output.path, tmp_path / "x", include_errors=True) / DATASET).read_text())
    (bad,) = [i for i in data["images"] if i["file_name"] == "photos/bad.jpg"]
    assert bad["error"] == "decode: empty file"
    assert not [a for a in data["annotations"] if a["image_id"] == bad["id"]]
