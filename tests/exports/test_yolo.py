"""The YOLO export: ``data.yaml`` as Ultralytics reads it, label files of exactly five normalised fields that
denormalise to the Parquet's pixel boxes, confidences in ``scores.jsonl`` only, every ``ok`` frame once, under a
flat name of its own."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.storage import location
from exports.naming import MAX_SEGMENT_BYTES, flat_name
from exports.run import run_export
from schemas.export_config import ExportConfig
from tests.exports.conftest import output_rows
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.two_runs import DATA

PIXEL_TOLERANCE = 0.01


def export(output: Any, to: Path, **options: Any) -> Path:
    run_export(ExportConfig(output=str(output), format="yolo", to=str(to), **options), stream=io.StringIO())
    return to


def scores(to: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (to / "scores.jsonl").read_text().splitlines()]


def pixel_boxes(label: Path, width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    """A label file back in pixels, checking that each line has exactly five fields."""
    boxes = []
    for line in label.read_text().splitlines():
        fields = line.split(" ")
        assert len(fields) == 5, f"{label}: {line!r}"
        cls, cx, cy, w, h = int(fields[0]), *(float(f) for f in fields[1:])
        assert all(0 <= v <= 1 for v in (cx, cy, w, h))
        boxes.append((cls, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    return boxes


@pytest.fixture(scope="module")
def yolo_export(job_output, tmp_path_factory) -> Path:
    return export(job_output.out, tmp_path_factory.mktemp("yolo") / "export")


def test_data_yaml_names_are_a_dict_and_splits_point_at_images(yolo_export):
    data = yaml.safe_load((yolo_export / "data.yaml").read_text())
    assert data["path"] == str(yolo_export)
    assert (data["train"], data["val"]) == ("images/train", "images/train")
    assert isinstance(data["names"], dict) and len(data["names"]) == 80
    assert (data["names"][0], data["names"][79]) == ("person", "toothbrush")


def test_labels_denormalise_to_the_parquets_boxes(yolo_export, job_output):
    frames = output_rows(
        job_output.out, "select source_uri, frame_index, width, height from {frames} where status = 'ok'"
    )
    size = {(uri, index): (w, h) for uri, index, w, h in frames}
    entries = scores(yolo_export)
    assert sorted((e["source_uri"], e["frame_index"]) for e in entries) == sorted(size), "every ok frame once"
    got = []
    for entry in entries:
        boxes = pixel_boxes(yolo_export / entry["label"], *size[entry["source_uri"], entry["frame_index"]])
        assert len(boxes) == len(entry["scores"]), "one score per label line, in order"
        got += [(entry["source_uri"], entry["frame_index"], *box, s) for box, s in zip(boxes, entry["scores"])]
    want = output_rows(
        job_output.out, "select source_uri, frame_index, class_id, x1, y1, x2, y2, score from {detections}"
    )
    assert len(got) == len(want) > 0
    for g, w in zip(sorted(got, key=lambda b: (b[:3], -b[-1])), sorted(want, key=lambda b: (b[:3], -b[-1]))):
        assert g[:3] == w[:3]
        assert g[3:7] == pytest.approx(w[3:7], abs=PIXEL_TOLERANCE)
        assert g[7] == pytest.approx(w[7], abs=1e-6)


def test_a_frame_without_boxes_has_an_empty_label_file(yolo_export, job_output):
    empty = {
        (uri, i)
        for uri, i in output_rows(
            job_output.out, "select source_uri, frame_index from {frames} where status = 'ok' and num_detections = 0"
        )
    }
    assert empty, "the inputs hold a frame without boxes"
    for entry in scores(yolo_export):
        if (entry["source_uri"], entry["frame_index"]) in empty:
            assert (yolo_export / entry["label"]).read_text() == "" and entry["scores"] == []
    assert (yolo_export / "labels/train/blank.txt").read_text() == ""


def test_layout_follows_ultralytics_with_flat_names(yolo_export):
    labels = sorted(p.relative_to(yolo_export / "labels/train").as_posix() for p in yolo_export.rglob("*.txt"))
    assert "cam one__photo 1.txt" in labels and "clips__clip.mp4__frame_000003.txt" in labels
    assert not [label for label in labels if "/" in label], "no folders under labels/<split>/"
    for entry in scores(yolo_export):
        image, label = entry["image"], entry["label"]
        assert image.startswith("images/train/") and "/" not in image[len("images/train/") :]
        assert label == "labels/" + image[len("images/") :].rsplit(".", 1)[0] + ".txt"
    assert not [p for p in yolo_export.rglob("*") if p.name.endswith(".tmp")]


def test_splits_are_folders_and_data_yaml_keys(synthetic_output, tmp_path):
    to = export(synthetic_output.path, tmp_path / "x", split={"train": 0.5, "val": 0.5})
    data = yaml.safe_load((to / "data.yaml").read_text())
    assert (data["train"], data["val"]) == ("images/train", "images/val")
    by_split = {e["label"].split("/")[1] for e in scores(to)}
    assert by_split <= {"train", "val"}
    again = export(synthetic_output.path, tmp_path / "y", split={"train": 0.5, "val": 0.5})
    assert (to / "scores.jsonl").read_text() == (again / "scores.jsonl").read_text()


def test_images_differing_only_in_extension_get_their_own_label_files(tmp_path):
    out = location(str(tmp_path / "out"))
    frames = [
        Frame(f"{DATA}/a.jpg", [("person", 0.9, 0, 0, 10, 10)]),
        Frame(f"{DATA}/a.jpg.png", [("person", 0.8, 0, 0, 20, 20)]),
        Frame(f"{DATA}/a.png", [("car", 0.7, 0, 0, 30, 30)]),
        Frame(f"{DATA}/a.png/b.jpg"),
        Frame(f"{DATA}/b.jpg"),
    ]
    commit_run(out, run_id(1), {"00000": frames})
    entries = scores(export(out.path, tmp_path / "x"))
    labels = [e["label"] for e in entries]
    assert len(set(labels)) == len(labels) == 5
    renamed = next(e for e in entries if e["source_uri"].endswith("/a.png"))
    assert (renamed["image"], renamed["label"]) == ("images/train/a_png.png", "labels/train/a_png.txt")
    assert pixel_boxes(tmp_path / "x" / renamed["label"], 64, 48)[0][0] == 1


def test_class_names_with_yaml_syntax_survive(tmp_path):
    out = location(str(tmp_path / "out"))
    names = ('odd: "name" #1', "日本語", "- dash")
    commit_run(out, run_id(1), {"00000": [Frame(f"{DATA}/a.jpg", [("日本語", 0.9, 0, 0, 10, 10)])]}, class_names=names)
    data = yaml.safe_load((export(out.path, tmp_path / "x") / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(names))


def test_error_frames_get_no_label_file(synthetic_output, tmp_path):
    to = export(synthetic_output.path, tmp_path / "x", include_errors=True)
    (bad,) = [e for e in scores(to) if e["source_uri"].endswith("/bad.jpg")]
    assert bad["error"] == "decode: empty file" and "label" not in bad
    assert bad["image"] == "images/train/photos__bad.jpg" and not (to / "labels/train/photos__bad.txt").exists()


JOINS_ALIKE = ("a/b.jpg", "a/b/c.jpg", "a/b__c.jpg", "a/_b.jpg", "a_/b.jpg", "a__b.jpg", "a__b/c.jpg", "a__b__c.jpg")
"""Names whose segments joined by ``__`` fall on one another: ``a__b``, ``a___b`` and ``a__b__c`` twice or more."""


def test_flat_names_are_unique_deterministic_and_fit_a_file_name():
    long = "/".join(["ü" * 90] * 4) + "/photo.jpeg"
    names = [*JOINS_ALIKE, "a b/c d/000000475546.jpg", "_x/y_.png", long, long.replace("photo", "other")]
    flat = [flat_name(name) for name in names]
    assert flat == [flat_name(name) for name in names], "the same name every time"
    assert len({f.rsplit(".", 1)[0] for f in flat}) == len(names), "distinct stems, so distinct label files"
    assert all("/" not in f and len(f.encode()) <= MAX_SEGMENT_BYTES for f in flat)
    assert flat[:2] == ["a__b.jpg", "a__b__c.jpg"] and flat[-4:-2] == ["a b__c d__000000475546.jpg", "_x__y_.png"]
    hashed = [f for f in flat if "___" in f]
    assert len(hashed) == 6 + 2, "the ambiguous joins and the long names"
    assert all(f.endswith((".jpg", ".jpeg")) for f in hashed), "the extension stays last"


def test_names_that_flatten_alike_get_their_own_images_and_labels(tmp_path):
    out = location(str(tmp_path / "out"))
    frames = [Frame(f"{DATA}/{name}", [("person", 0.9, 0, 0, 2 + i, 2 + i)]) for i, name in enumerate(JOINS_ALIKE)]
    commit_run(out, run_id(1), {"00000": frames})
    entries = scores(export(out.path, tmp_path / "x"))
    assert len({e["image"] for e in entries}) == len({e["label"] for e in entries}) == len(JOINS_ALIKE)
    for entry in entries:
        name = entry["name"]
        assert entry["source_uri"] == f"{DATA}/{name}" and entry["image"] == f"images/train/{flat_name(name)}"
        assert entry["label"] == "labels/" + entry["image"][len("images/") :].rsplit(".", 1)[0] + ".txt"
        (box,) = pixel_boxes(tmp_path / "x" / entry["label"], 64, 48)
        assert box[3] == pytest.approx(2 + JOINS_ALIKE.index(name), abs=PIXEL_TOLERANCE), "each its own box"
