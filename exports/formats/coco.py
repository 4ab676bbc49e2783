"""COCO detection datasets from an export's frames, for CVAT, Label Studio's COCO import, datumaro, pycocotools.

Layout (datumaro's, which CVAT imports from a zip of the folder)::

    annotations/instances_<subset>.json   the dataset: images, annotations (with ``score``), categories
    results_<subset>.json                 with --results: the same boxes as a COCO results list (``loadRes``)

``<subset>`` is each ``--split`` name, or ``default`` without one. ``file_name`` is the frame's name, relative
to the image root the summary prints (``images/<subset>/`` when the images are laid out datumaro's way);
``source_uri`` (and ``frame_index`` for a video frame) say where its pixels are. Ids are stable: images and
annotations are numbered from 1 in the reader's order (by URI and frame), categories from 1 in the export's
class order (COCO tools take 0 for "no category", and CVAT refuses it).

Numbers have 7 significant digits, the precision of the float32 values in the Parquet (``235.4``, not
``235.39999389648438``, a third of the file's size). Everything streams: each array goes to its own temporary
file as frames arrive, and the JSON is put together from them at the end, so memory does not grow with the
number of boxes.
"""

from __future__ import annotations

import json
import tempfile
from typing import TextIO

from common.storage import Location
from exports.records import Categories, FormatWriter, FrameRecord
from exports.spool import Spool
from exports.target import ExportTarget, copy_text
from schemas.export_config import ExportConfig

DEFAULT_SUBSET = "default"
"""datumaro's and CVAT's name for the one subset of a dataset that has no split."""


def writer(config: ExportConfig, categories: Categories, target: Location) -> FormatWriter:
    return CocoWriter(config, categories, target)


class _JsonArray:
    """The items of one JSON array, appended as they come to a temporary file."""

    def __init__(self) -> None:
        self.file: TextIO = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.count = 0

    def add(self, item: str) -> None:
        self.file.write((",\n" if self.count else "\n") + item)
        self.count += 1

    def copy_to(self, out: Spool) -> None:
        out.write("[")
        copy_text(self.file, out)
        out.write("\n]" if self.count else "]")


class _Subset:
    def __init__(self, results: bool) -> None:
        self.images = _JsonArray()
        self.annotations = _JsonArray()
        self.results = _JsonArray() if results else None


class CocoWriter:
    """One COCO dataset per subset; ``close`` assembles and publishes them."""

    def __init__(self, config: ExportConfig, categories: Categories, target: Location) -> None:
        self.target = ExportTarget(target)
        self.categories = categories
        names = list(config.split) if config.split else [DEFAULT_SUBSET]
        self._subsets = {name: _Subset(config.results) for name in names}
        self._image_id = 0
        self._annotation_id = 0

    def write(self, frame: FrameRecord) -> None:
        subset = self._subsets[frame.split or DEFAULT_SUBSET]
        self._image_id += 1
        image_id = self._image_id
        image: dict[str, object] = {
            "id": image_id,
            "file_name": frame.name,
            "width": frame.width,
            "height": frame.height,
            "source_uri": frame.source_uri,
        }
        if frame.is_video:
            image["frame_index"] = frame.frame_index
        if frame.error is not None:
            image["error"] = frame.error
        subset.images.add(json.dumps(image, ensure_ascii=False))
        for box in frame.boxes:
            self._annotation_id += 1
            width, height = box.x2 - box.x1, box.y2 - box.y1
            x, y, w, h = f"{box.x1:.7g}", f"{box.y1:.7g}", f"{width:.7g}", f"{height:.7g}"
            category, score = box.category + 1, f"{box.score:.7g}"
            subset.annotations.add(
                f'{{"id":{self._annotation_id},"image_id":{image_id},"category_id":{category},"bbox":[{x},{y},{w},{h}],'
                f'"area":{width * height:.7g},"iscrowd":0,"segmentation":[],"score":{score}}}'
            )
            if subset.results is not None:
                subset.results.add(
                    f'{{"image_id":{image_id},"category_id":{category},"bbox":[{x},{y},{w},{h}],"score":{score}}}'
                )

    def close(self) -> list[str]:
        written = []
        categories = json.dumps(
            [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(self.categories.names)],
            ensure_ascii=False,
        )
        for name, subset in self._subsets.items():
            dataset = f"annotations/instances_{name}.json"
            out = self.target.spool(dataset)
            out.write('{"info":{"description":"YOLO-NAS detections exported by yolonas-batch"},"licenses":[],')
            out.write(f'"categories":{categories},\n"images":')
            subset.images.copy_to(out)
            out.write(',\n"annotations":')
            subset.annotations.copy_to(out)
            out.write("}\n")
            out.publish()
            written.append(dataset)
            if subset.results is not None:
                results = f"results_{name}.json"
                out = self.target.spool(results)
                subset.results.copy_to(out)
                out.write("\n")
                out.publish()
                written.append(results)
        return written
