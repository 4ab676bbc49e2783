"""The YOLO export of a nested input tree read back by datumaro's YOLO importer (run offline in the validators'
environment), as CVAT imports it: no error, every exported frame an item of its split, the same class names and
boxes.

datumaro takes the folder holding an image for its subset and finds a label file's image by the YOLO convention
(``labels`` → ``images``, the image's extension), reading the image's size from it; so the test lays a real image
of each frame's size at the path ``scores.jsonl`` gives it, as a user would. The tree is the one datumaro fails
on without flat names: photos of one name in two nested folders with spaces, beside a root-level file whose
name their flat names would take.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from common.storage import location
from exports.formats import writer
from exports.records import FrameRecord
from schemas.export_config import ExportConfig
from tests.support.frame_records import CATEGORIES, image, sample_frames, video_frame
from tests.support.validators import run_validator

PIXEL_TOLERANCE = 0.01
SPLIT = {"train": 0.5, "val": 0.5}


def frames() -> list[FrameRecord]:
    """A nested tree, in the reader's order (by source URI)."""
    walk, _, cars, *_ = sample_frames()
    return [
        image("a b/c d/000000475546.jpg", walk.boxes, split="train"),
        image("a b/c d/blank.png", (), split="train"),
        image("a b/e f/000000475546.jpg", cars.boxes, width=cars.width, height=cars.height, split="train"),
        image("a b__c d__000000475546.jpg", walk.boxes[1:], split="train"),
        video_frame("clips/walk.mp4", 25, walk.boxes[:1]),
        image("x/y z/000000475546.jpg", walk.boxes[2:], split="val"),
    ]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[FrameRecord], list[dict[str, Any]], Any]:
    """The frames, the export's ``scores.jsonl`` lines and what datumaro read back, once for the module."""
    to = tmp_path_factory.mktemp("yolo-datumaro")
    written = frames()
    out = writer(ExportConfig(output="/unused", format="yolo", to=str(to), split=SPLIT), CATEGORIES, location(str(to)))
    for frame in written:
        out.write(frame)
    out.close()
    entries = [json.loads(line) for line in (to / "scores.jsonl").read_text().splitlines()]
    for frame, entry in zip(written, entries, strict=True):
        path = to / entry["image"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (frame.width, frame.height)).save(path)
    return written, entries, run_validator("check_datumaro.py", "yolo", to)


def test_datumaro_imports_every_frame_and_box_of_a_nested_tree(exported) -> None:
    written, entries, dataset = exported
    assert dataset["sources"] == ["yolo_ultralytics"]  # the layout datumaro recognised
    assert dataset["labels"] == list(CATEGORIES.names)
    keys = sorted((item["subset"], item["id"]) for item in dataset["items"])
    assert keys == sorted((e["image"].split("/")[1], Path(e["image"]).stem) for e in entries)
    assert len(set(keys)) == len(written)
    assert sum(len(item["boxes"]) for item in dataset["items"]) == sum(len(f.boxes) for f in written) > 0


def test_datumaro_reads_back_the_same_sizes_and_boxes(exported) -> None:
    written, entries, dataset = exported
    items = {(item["subset"], item["id"]): item for item in dataset["items"]}
    for frame, entry in zip(written, entries, strict=True):
        item = items[frame.split or "train", Path(entry["image"]).stem]
        assert item["size"] == [frame.height, frame.width]
        expected = sorted((CATEGORIES.names[b.category], b.x1, b.y1, b.x2, b.y2) for b in frame.boxes)
        back = sorted((b["label"], b["x1"], b["y1"], b["x2"], b["y2"]) for b in item["boxes"])
        assert [b[0] for b in back] == [e[0] for e in expected]
        for got, want in zip(back, expected, strict=True):
            assert got[1:] == pytest.approx(want[1:], abs=PIXEL_TOLERANCE), frame.name
