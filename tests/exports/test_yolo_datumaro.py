"""The YOLO export read back by datumaro's YOLO importer (run offline in the validators' environment): the same
class names, images and boxes.

datumaro finds a label file's image by the YOLO convention (the same path with ``labels`` → ``images`` and the
image's extension) and reads the image's size from it, so the test lays real images of each frame's size there. It
reads only flat layouts (``labels/<subset>/<name>.txt``), so the frames here have names without folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from common.storage import location
from exports.formats import writer
from exports.records import FrameRecord
from schemas.export_config import ExportConfig
from tests.support.frame_records import CATEGORIES, image, sample_frames
from tests.support.validators import run_validator

PIXEL_TOLERANCE = 0.01


def frames() -> list[FrameRecord]:
    with_boxes = sample_frames()
    return [
        image("a.jpg", with_boxes[0].boxes),
        image("b.png", ()),
        image("c.jpg", with_boxes[2].boxes, width=with_boxes[2].width, height=with_boxes[2].height),
    ]


def lay_out_images(folder: Path, exported: list[FrameRecord]) -> None:
    """A blank image of each frame's size where YOLO (and datumaro) look for it beside its label file."""
    for frame in exported:
        stem = Path(frame.name).stem
        labels = [path for path in folder.rglob(f"{stem}.txt") if "labels" in path.relative_to(folder).parts]
        assert len(labels) <= 1, labels
        if not labels:
            assert not frame.boxes, f"no label file for {frame.name}"
            continue
        parts = list(labels[0].relative_to(folder).parts)
        parts[parts.index("labels")] = "images"
        path = folder.joinpath(*parts).with_suffix(Path(frame.name).suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (frame.width, frame.height)).save(path)


def test_datumaro_reads_back_the_same_classes_and_boxes(tmp_path: Path) -> None:
    exported = frames()
    config = ExportConfig(output="/unused", format="yolo", to=str(tmp_path))
    out = writer(config, CATEGORIES, location(str(tmp_path)))
    for frame in exported:
        out.write(frame)
    out.close()
    lay_out_images(tmp_path, exported)

    dataset = run_validator("check_datumaro.py", "yolo", tmp_path)

    assert dataset["sources"] == ["yolo_ultralytics"]  # the layout datumaro recognised
    assert dataset["labels"] == list(CATEGORIES.names)
    items = {item["id"]: item for item in dataset["items"]}
    for frame in exported:
        item = items.get(Path(frame.name).stem)
        if item is None:
            assert not frame.boxes, f"datumaro did not read {frame.name}: {sorted(items)}"
            continue
        assert item["size"] == [frame.height, frame.width]
        expected = sorted((CATEGORIES.names[b.category], b.x1, b.y1, b.x2, b.y2) for b in frame.boxes)
        back = sorted((b["label"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in item["boxes"])
        assert [b[0] for b in back] == [e[0] for e in expected]
        for got, want in zip(back, expected, strict=True):
            assert got[1:] == pytest.approx(want[1:], abs=PIXEL_TOLERANCE), frame.name
