"""Ultralytics YOLO detection datasets from an export's frames (Ultralytics, CVAT's "Ultralytics YOLO" import,
Roboflow).

Layout::

    data.yaml                      path, one key per split (images/<split>), names as {0: name, ...}
    labels/<split>/<name>.txt      one line per box: ``class cx cy w h``, normalised, 6 decimals
    scores.jsonl                   one line per frame: its image and label paths, its name (the nested path
                                   other formats use), source_uri, frame_index, and the score of each label
                                   line, in order

Labels have exactly five fields: Ultralytics reads a sixth as a track id (or a keypoint) and rejects the file,
so the confidences go to ``scores.jsonl``, at the top of the export where no YOLO tool looks for labels (a
``*.scores.txt`` next to the labels would be taken for the labels of an image of that name). A frame without
boxes gets an empty label file: Ultralytics' "background" image, which is what it is. Without ``--split`` every
frame is in ``train`` and ``val`` points at it too (Ultralytics wants both keys).

Only labels are written: put each image at its path in ``scores.jsonl`` (``images/<split>/<flat name>``), which
also says which input and frame that is. Names are flat, the frame's name with ``/`` as ``__`` (``flat_name``):
datumaro's YOLO importer, which CVAT imports through, takes the folder holding a label or image for its subset
and looks for images only right under ``images/<split>/``, so it fails on a nested tree; Ultralytics reads flat
folders as well as nested ones. Ultralytics finds a label by the image's path with ``images`` turned into
``labels`` and the extension into ``.txt``, so two images differing only in extension (``a.jpg``, ``a.png``)
would share a label file; the second is then exported as ``a_png.png`` with label ``a_png.txt``, and
``scores.jsonl`` says so. A frame that failed (exported with ``--errors``) gets no label file, only its line in
``scores.jsonl``.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from typing import TextIO

from common.storage import Location
from exports.naming import flat_name
from exports.records import Categories, FormatWriter, FrameRecord
from exports.target import ExportTarget, copy_text
from schemas.export_config import ExportConfig

DEFAULT_SPLIT = "train"


def writer(config: ExportConfig, categories: Categories, target: Location) -> FormatWriter:
    return YoloWriter(config, categories, target)


class YoloWriter:
    def __init__(self, config: ExportConfig, categories: Categories, target: Location) -> None:
        self.target = ExportTarget(target)
        self.categories = categories
        self.splits = list(config.split) if config.split else [DEFAULT_SPLIT]
        self._stems = {split: _LabelStems() for split in self.splits}
        self._scores: TextIO = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._labels = dict.fromkeys(self.splits, 0)

    def write(self, frame: FrameRecord) -> None:
        split = frame.split or DEFAULT_SPLIT
        image = flat_name(self._stems[split].image_path(frame.name))
        entry: dict[str, object] = {"image": f"images/{split}/{image}"}
        if frame.error is None:
            label = f"labels/{split}/{posixpath.splitext(image)[0]}.txt"
            self.target.put(label, _label_lines(frame).encode())
            self._labels[split] += 1
            entry["label"] = label
        entry |= {"name": frame.name, "source_uri": frame.source_uri, "frame_index": frame.frame_index}
        if frame.error is None:
            entry["scores"] = [round(box.score, 6) for box in frame.boxes]
        else:
            entry["error"] = frame.error
        self._scores.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def close(self) -> list[str]:
        self.target.flush()
        data = self.target.spool("data.yaml")
        data.write(self._data_yaml())
        data.publish()
        scores = self.target.spool("scores.jsonl")
        copy_text(self._scores, scores)
        scores.publish()
        return ["data.yaml", "scores.jsonl"] + [f"labels/{s}/ ({n} files)" for s, n in self._labels.items()]

    def _data_yaml(self) -> str:
        lines = [
            "# Ultralytics YOLO dataset: pre-labels from YOLO-NAS, written by yolonas-batch export.",
            "# Labels only: put each image at images/<split>/<name>; scores.jsonl names its input and frame.",
        ]
        if self.target.where.is_local:
            lines.append(f"path: {_yaml_string(self.target.where.path)}")
        else:
            lines.append("# path: left out, so Ultralytics takes this file's folder")
        lines += [f"{split}: images/{split}" for split in self.splits]
        if "val" not in self.splits and self.splits == [DEFAULT_SPLIT]:
            lines.append(f"val: images/{DEFAULT_SPLIT}")
        lines.append("names:")
        lines += [f"  {i}: {_yaml_string(name)}" for i, name in enumerate(self.categories.names)]
        return "\n".join(lines) + "\n"


def _label_lines(frame: FrameRecord) -> str:
    """``class cx cy w h`` per box, normalised by the frame's size (boxes are clipped to it, so within 0..1)."""
    width, height = frame.width, frame.height
    lines = []
    for box in frame.boxes:
        cx, cy = (box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height
        w, h = (box.x2 - box.x1) / width, (box.y2 - box.y1) / height
        lines.append(f"{box.category} {_unit(cx):.6f} {_unit(cy):.6f} {_unit(w):.6f} {_unit(h):.6f}\n")
    return "".join(lines)


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar: JSON's string syntax is a subset of it (non-ASCII kept as is)."""
    return json.dumps(text, ensure_ascii=False)


class _LabelStems:
    """Label paths already used in one split, to tell when two images would share one (``a.jpg``, ``a.png``).

    Names arrive sorted, and every name starting with ``a.`` arrives in one run; so only the stems whose
    ``<stem>.`` is a prefix of the current name can be met again, and those form a chain of prefixes. The stack
    holds that chain: a few entries however many frames pass."""

    def __init__(self) -> None:
        self._open: list[str] = []

    def image_path(self, name: str) -> str:
        stem, ext = posixpath.splitext(name)
        while self._open and not name.startswith(self._open[-1] + "."):
            self._open.pop()
        if stem in self._open:
            renamed = f"{stem}_{ext.lstrip('.')}{ext}"
            return renamed
        self._open.append(stem)
        return name
