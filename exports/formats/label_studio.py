"""Label Studio: pre-annotated tasks (``tasks-00000.json``, ...) and the labelling config they match (``config.xml``).

Each frame becomes one task whose single prediction holds all its boxes as ``rectanglelabels`` in percent of the
image (Label Studio's unit), so annotators start from the model's boxes and correct them. Large single imports
fail in Label Studio, so the tasks are split over files of at most ``MAX_TASKS_PER_FILE``, each a JSON list
spooled to disk as the frames arrive and published when full (memory holds one task, not a file).

Where Label Studio finds each task's image (``data.image``):

* ``s3://…`` inputs keep their URI: Label Studio's S3 source storage signs such URIs when it shows them.
* local images become ``/data/local-files/?d=<path relative to --document-root>``, the URL its local-files
  storage serves (with ``LOCAL_FILES_SERVING_ENABLED=true`` and ``LOCAL_FILES_DOCUMENT_ROOT`` set to that folder).
  Without ``--document-root`` the root is ``/``, Label Studio's own default for ``LOCAL_FILES_DOCUMENT_ROOT``, so
  the export works with a default Label Studio; an image outside a given root is an error (it could not be served).
* a video frame has no file of its own: it is ``<video>/frame_NNNNNN.jpg`` (``FrameRecord.name``) under the
  document root, where the user extracts the frames (README), so video frames need ``--document-root``.

The task's prediction ``score`` is the mean of its boxes' scores, what Label Studio sorts by to put the least
certain tasks first (a frame without boxes has none); each box keeps its own ``score`` too. A frame that failed
(exported with ``--errors``) is a task without a prediction, its ``data.error`` saying why.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from common.errors import UsageError
from common.storage import Location
from exports.records import Box, Categories, FrameRecord
from exports.spool import Spool
from exports.target import ExportTarget
from schemas.export_config import ExportConfig

MAX_TASKS_PER_FILE = 10_000
"""Tasks per file: Label Studio handles imports of this size; much larger single imports time out or fail."""
CONFIG_FILE = "config.xml"
IMAGE_NAME = "image"
"""The ``<Image>`` object: predictions' ``to_name``, and the task data key (``$image``) it shows."""
LABELS_NAME = "label"
"""The ``<RectangleLabels>`` control: predictions' ``from_name``."""
LABEL_STUDIO_DEFAULT_ROOT = "/"
"""Label Studio's default ``LOCAL_FILES_DOCUMENT_ROOT``; ours when ``--document-root`` is not given."""
DECIMALS = 6
"""Percent coordinates and scores keep 6 decimals: back in pixels within 0.0001 px for images up to 20,000 px."""


def writer(config: ExportConfig, categories: Categories, target: Location) -> LabelStudioWriter:
    return LabelStudioWriter(config, categories, target)


class LabelStudioWriter:
    """Streams tasks into ``tasks-NNNNN.json`` files (each published when full) and writes ``config.xml`` on
    ``close``."""

    def __init__(self, config: ExportConfig, categories: Categories, target: Location) -> None:
        self._images = ImageSources(config.document_root)
        self._categories = categories
        self._target = ExportTarget(target)
        self._file: Spool | None = None
        self._in_file = 0
        self._tasks = 0
        self._files: list[str] = []

    def write(self, frame: FrameRecord) -> None:
        task = make_task(frame, self._images(frame), self._categories, task_number=self._tasks)
        if self._file is None or self._in_file >= MAX_TASKS_PER_FILE:
            self._start_file()
        assert self._file is not None
        self._file.write(("[\n" if self._in_file == 0 else ",\n") + json.dumps(task, ensure_ascii=False))
        self._in_file += 1
        self._tasks += 1

    def close(self) -> list[str]:
        if self._file is None:
            self._start_file()  # an export without frames is one empty list, so the layout never varies
        self._finish_file()
        self._target.put(CONFIG_FILE, labelling_config(self._categories.names).encode())
        self._target.flush()
        return [*self._files, CONFIG_FILE]

    def _start_file(self) -> None:
        self._finish_file()
        name = f"tasks-{len(self._files):05d}.json"
        self._file = self._target.spool(name)
        self._files.append(name)
        self._in_file = 0

    def _finish_file(self) -> None:
        if self._file is not None:
            self._file.write("\n]\n" if self._in_file else "[]\n")
            self._file.publish()
            self._file = None


def make_task(frame: FrameRecord, image: str, categories: Categories, task_number: int) -> dict[str, Any]:
    """One Label Studio task: the frame's image and where it came from, and one prediction with all its boxes."""
    data = {
        IMAGE_NAME: image,
        "name": frame.name,
        "source_uri": frame.source_uri,
        "frame_index": frame.frame_index,
        "timestamp_s": frame.timestamp_s,
        "run_id": frame.run_id,
    }
    if frame.split is not None:
        data["split"] = frame.split
    if frame.error is not None:  # the model never saw it (--errors): an empty prediction would claim it did
        data["error"] = frame.error
        return {"data": data}
    result = [
        region(box, frame, categories, region_id=f"{task_number}_{index}") for index, box in enumerate(frame.boxes)
    ]
    prediction: dict[str, Any] = {
        "model_version": categories.model_version or f"yolonas-batch run {frame.run_id}",
        "result": result,
    }
    if frame.boxes:
        prediction["score"] = round(sum(box.score for box in frame.boxes) / len(frame.boxes), DECIMALS)
    return {"data": data, "predictions": [prediction]}


def region(box: Box, frame: FrameRecord, categories: Categories, region_id: str) -> dict[str, Any]:
    """One box as a ``rectanglelabels`` result: corners in percent of the image, clipped to 0–100."""
    left, right = _percent(box.x1, frame.width), _percent(box.x2, frame.width)
    top, bottom = _percent(box.y1, frame.height), _percent(box.y2, frame.height)
    return {
        "id": region_id,
        "type": "rectanglelabels",
        "from_name": LABELS_NAME,
        "to_name": IMAGE_NAME,
        "original_width": frame.width,
        "original_height": frame.height,
        "image_rotation": 0,
        "value": {
            "x": left,
            "y": top,
            "width": round(max(right - left, 0.0), DECIMALS),
            "height": round(max(bottom - top, 0.0), DECIMALS),
            "rotation": 0,
            "rectanglelabels": [categories.names[box.category]],
        },
        "score": round(float(box.score), DECIMALS),
    }


def _percent(pixels: float, size: int) -> float:
    return min(max(round(100.0 * pixels / size, DECIMALS), 0.0), 100.0)


def labelling_config(names: tuple[str, ...]) -> str:
    """The labelling config the predictions are valid for: an ``<Image>`` and a ``<RectangleLabels>`` of the
    export's classes, named as the predictions' ``to_name``/``from_name``."""
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in names)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}"/>\n'
        f'  <RectangleLabels name="{LABELS_NAME}" toName="{IMAGE_NAME}">\n'
        f"{labels}"
        "  </RectangleLabels>\n"
        "</View>\n"
    )


class ImageSources:
    """``data.image`` of each frame's task, by the rules in the module's docstring."""

    def __init__(self, document_root: str | None) -> None:
        self._given = document_root is not None
        self._root = _local_folder(document_root) if document_root is not None else LABEL_STUDIO_DEFAULT_ROOT

    def __call__(self, frame: FrameRecord) -> str:
        if frame.is_video:
            if not self._given:
                raise UsageError(
                    "label-studio: video frames are exported as <video>/frame_NNNNNN.jpg under the folder Label "
                    "Studio serves; give --document-root (the folder the frames are extracted into, see README)"
                )
            return local_files_url(frame.name)
        if frame.source_uri.startswith("file://"):
            return local_files_url(self._relative(frame.source_uri[len("file://") :]))
        return frame.source_uri

    def _relative(self, path: str) -> str:
        relative = posixpath.relpath(path, self._root)
        if relative == ".." or relative.startswith("../"):
            raise UsageError(
                f"label-studio: {path} is not under --document-root {self._root}; Label Studio serves local files "
                "only from its document root: give the folder that holds all the inputs"
            )
        return relative


def local_files_url(relative_path: str) -> str:
    """The URL Label Studio's local-files storage serves ``relative_path`` (under its document root) at; quoted as
    Label Studio quotes it when it syncs a local storage itself."""
    return f"/data/local-files/?d={quote(relative_path)}"


def _local_folder(document_root: str) -> str:
    if document_root.startswith("file://"):
        document_root = document_root[len("file://") :]
    elif "://" in document_root:
        raise UsageError(f"--document-root is the local folder Label Studio serves files from, not {document_root}")
    return posixpath.abspath(posixpath.expanduser(document_root))
