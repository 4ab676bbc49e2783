"""The CVAT for images 1.1 export, read back by datumaro's CVAT importer (run offline in the validators'
environment) and checked against the structure of CVAT's own image-task export."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from common.storage import location
from exports.cli import export_main
from exports.formats import cvat, writer
from exports.records import FrameRecord
from schemas.export_config import ExportConfig
from tests.support.frame_records import CATEGORIES, image, sample_frames
from tests.support.outputs import Frame, commit_run
from tests.support.s3 import s3_client
from tests.support.validators import run_validator

PIXEL_TOLERANCE = 0.006
"""Corners have two decimals, as in CVAT's own export (within 0.005 px), and datumaro keeps them as float32."""
BOX_ATTRIBUTES = {"label", "source", "occluded", "xtl", "ytl", "xbr", "ybr", "z_order"}


def export(frames: list[FrameRecord], to: Path | str, **options: Any) -> list[str]:
    """Write ``frames`` as the CLI would (the registry's writer, every frame, then ``close``)."""
    config = ExportConfig(output="/unused", format="cvat", to=str(to), **options)
    out = writer(config, CATEGORIES, location(str(to)))
    for frame in frames:
        out.write(frame)
    return out.close()


def lay_out_images(folder: Path, frames: list[FrameRecord]) -> None:
    """Empty stand-ins at ``images/<name>``, where a CVAT dataset keeps its images: datumaro insists the files
    exist (the sizes come from the XML, so it never reads them)."""
    for frame in frames:
        path = folder / "images" / frame.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def item_id(frame: FrameRecord) -> str:
    return frame.name.rsplit(".", 1)[0]


def test_datumaro_reads_back_the_same_images_boxes_and_labels(tmp_path: Path) -> None:
    frames = sample_frames()
    assert export(frames, tmp_path) == ["annotations.xml"]
    lay_out_images(tmp_path, frames)

    dataset = run_validator("check_datumaro.py", "cvat", tmp_path)

    assert dataset["detected"] == ["cvat"]
    assert dataset["labels"] == list(CATEGORIES.names)
    items = {item["id"]: item for item in dataset["items"]}
    assert sorted(items) == sorted(item_id(frame) for frame in frames)
    for frame in frames:
        item = items[item_id(frame)]
        assert item["size"] == [frame.height, frame.width]
        assert item["other_annotations"] == []
        assert len(item["boxes"]) == len(frame.boxes)  # frames without boxes are there, empty
        for box, back in zip(frame.boxes, item["boxes"], strict=True):
            assert back["label"] == CATEGORIES.names[box.category]
            assert float(back["attributes"]["score"]) == pytest.approx(box.score, abs=5e-5)
            for corner in ("x1", "y1", "x2", "y2"):
                assert back[corner] == pytest.approx(getattr(box, corner), abs=PIXEL_TOLERANCE), (frame.name, corner)


def test_each_split_is_a_task_file_datumaro_reads_as_its_subset(tmp_path: Path) -> None:
    boxes = sample_frames()[0].boxes
    frames = [image("a.jpg", boxes, split="train"), image("b.jpg", (), split="val"), image("c.jpg", (), split="train")]

    files = export(frames, tmp_path, split={"train": 0.6, "val": 0.3, "test": 0.1})

    assert files == ["train.xml", "val.xml", "test.xml"]  # in --split's order, the empty split too
    lay_out_images(tmp_path, frames)
    dataset = run_validator("check_datumaro.py", "cvat", tmp_path)
    subsets = {item["id"]: item["subset"] for item in dataset["items"]}
    assert subsets == {"a": "train", "b": "val", "c": "train"}
    assert ET.parse(tmp_path / "test.xml").getroot().findtext("meta/task/size") == "0"
    assert ET.parse(tmp_path / "val.xml").getroot().findtext("meta/task/subset") == "val"


def test_structure_follows_cvats_image_task_export(tmp_path: Path) -> None:
    frames = sample_frames()
    export(frames, tmp_path)

    root = ET.parse(tmp_path / "annotations.xml").getroot()

    assert root.tag == "annotations"
    assert [child.tag for child in root][:2] == ["version", "meta"]
    assert root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None
    assert (task.findtext("mode"), task.findtext("size"), task.findtext("subset")) == ("annotation", "7", "default")
    labels = task.findall("labels/label")
    assert [label.findtext("name") for label in labels] == list(CATEGORIES.names)
    for label in labels:
        assert label.findtext("type") == "bbox"
        assert [a.findtext("name") for a in label.findall("attributes/attribute")] == ["score"]
    images = root.findall("image")
    assert [child.tag for child in root][2:] == ["image"] * len(frames)
    assert [(i.get("id"), i.get("name")) for i in images] == [(str(n), f.name) for n, f in enumerate(frames)]
    assert [(i.get("width"), i.get("height")) for i in images] == [(str(f.width), str(f.height)) for f in frames]
    for element, frame in zip(images, frames, strict=True):
        boxes = element.findall("box")
        assert len(boxes) == len(frame.boxes) and len(element) == len(frame.boxes)
        for box in boxes:
            assert set(box.attrib) == BOX_ATTRIBUTES
            assert (box.get("source"), box.get("occluded"), box.get("z_order")) == ("auto", "0", "0")
            assert [a.get("name") for a in box.findall("attribute")] == ["score"]
            assert float(box.get("xtl", "nan")) <= float(box.get("xbr", "nan"))


def test_an_export_without_frames_is_an_empty_task(tmp_path: Path) -> None:
    assert export([], tmp_path) == ["annotations.xml"]

    root = ET.parse(tmp_path / "annotations.xml").getroot()

    assert root.findtext("meta/task/size") == "0" and root.findall("image") == []


def test_files_appear_whole_or_not_at_all(tmp_path: Path) -> None:
    """Until ``close`` the frames wait in a spool beside the file; an export that fails part-way leaves nothing."""
    config = ExportConfig(output="/unused", format="cvat", to=str(tmp_path))
    out = writer(config, CATEGORIES, location(str(tmp_path)))
    for frame in sample_frames():
        out.write(frame)

    [spool] = list(tmp_path.iterdir())
    assert spool.name.startswith(f"{cvat.ANNOTATIONS_FILE}.") and spool.suffix == ".tmp"
    del out  # the export failed here: the writer is dropped without close
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_exports_to_s3(s3_endpoint: str, s3_bucket: str, s3_environment: dict[str, str]) -> None:
    frames = sample_frames()
    export(frames, f"s3://{s3_bucket}/cvat")

    body = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key="cvat/annotations.xml")["Body"].read()

    assert len(ET.fromstring(body).findall("image")) == len(frames)


def test_the_export_command_writes_tasks_datumaro_reads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """From a job's output through ``yolonas-batch export --split``: one task file per split, every frame in one."""
    out, dest = tmp_path / "out", tmp_path / "cvat"
    frames = [
        Frame(f"file:///data/photos/{n:02d}.jpg", [("person", 0.5 + n / 100, n, n, n + 9.5, n + 20)]) for n in range(8)
    ]
    frames += [Frame("file:///data/photos/clip.mp4", index=12), Frame("file:///x/broken.jpg", error="decode: bad")]
    commit_run(out, "20260102T000000Z-aaaaaa", {"00000": frames})

    code = export_main([str(out), "--format", "cvat", "--to", str(dest), "--split", "train=0.5,val=0.5", "--errors"])

    assert code == 0, capsys.readouterr()
    assert sorted(p.name for p in dest.iterdir()) == ["train.xml", "val.xml"]
    for task in dest.iterdir():
        for element in ET.parse(task).getroot().iter("image"):
            (dest / "images" / element.get("name", "")).parent.mkdir(parents=True, exist_ok=True)
            (dest / "images" / element.get("name", "")).touch()
    dataset = run_validator("check_datumaro.py", "cvat", dest)
    items = {item["id"]: item for item in dataset["items"]}
    assert sorted(items) == sorted([f"data/photos/{n:02d}" for n in range(8)] + ["data/photos/clip.mp4/frame_000012"])
    assert {item["subset"] for item in items.values()} == {"train", "val"}
    for n in range(8):
        [box] = items[f"data/photos/{n:02d}"]["boxes"]
        assert (box["label"], box["x1"], box["x2"]) == ("person", pytest.approx(n), pytest.approx(n + 9.5))
    assert items["data/photos/clip.mp4/frame_000012"]["boxes"] == []
