"""Read an exported dataset back with datumaro, offline: ``check_datumaro.py FORMAT PATH``.

FORMAT is datumaro's importer (``cvat``; ``yolo``, which picks its strict, loose or Ultralytics variant by the
layout; ``mot_seq``). datumaro's importers are independent implementations of these formats (CVAT's server imports
through them), run with a failing error policy: any item they cannot read fails the import. Prints JSON: the formats
datumaro detects at PATH, the variant (``sources``) the importer chose, the label names, and every item with its
subset, attributes (``frame``: the frame number of a CVAT item), image size (None where neither the annotations nor
an image file give it, as for the frames of a CVAT video task) and boxes in pixels (``x1 y1 x2 y2``) with their
attributes (a track's box: ``track_id``; in CVAT also ``keyframe`` and ``outside``).
"""

from __future__ import annotations

import contextlib
import json
import sys

from datumaro.components.annotation import AnnotationType
from datumaro.components.dataset import Dataset
from datumaro.components.environment import Environment


def main(format_name: str, path: str) -> dict:
    environment = Environment()
    detected = environment.detect_dataset(path)
    sources = sorted({source["format"] for source in environment.importers.get(format_name).find_sources(path)})
    dataset = Dataset.import_from(path, format_name)
    labels = [label.name for label in dataset.categories()[AnnotationType.label]]
    items = []
    for item in dataset:
        size = item.media.size if item.media is not None else None
        boxes = [
            {
                "label": labels[annotation.label],
                "x1": annotation.x,
                "y1": annotation.y,
                "x2": annotation.x + annotation.w,
                "y2": annotation.y + annotation.h,
                "attributes": {k: v for k, v in annotation.attributes.items()},
            }
            for annotation in item.annotations
            if annotation.type == AnnotationType.bbox
        ]
        others = [annotation.type.name for annotation in item.annotations if annotation.type != AnnotationType.bbox]
        items.append(
            {
                "id": item.id,
                "subset": item.subset,
                "attributes": dict(item.attributes),
                "size": list(size) if size else None,
                "boxes": boxes,
                "other_annotations": others,
            }
        )
    return {"detected": detected, "sources": sources, "labels": labels, "items": items}


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON, whatever the libraries print
        report = main(*sys.argv[1:])
    json.dump(report, sys.stdout)
