"""CVAT for images 1.1: an XML file of ``<image>`` elements with their ``<box>`` elements, per CVAT task.

The layout follows CVAT's own export of an image task: ``<annotations>``, ``<version>1.1</version>``, a ``<meta>``
``<task>`` that declares the labels, then one ``<image id name width height>`` per frame in export order (every
frame, those without boxes too, so a reviewer sees that the model found nothing there). Boxes are marked
``source="auto"`` and carry the model's confidence as a ``score`` attribute, declared on every label as a text
attribute (text takes any value in CVAT, where a number attribute would need a range and an integer step).

CVAT keeps one subset per task, so with ``--split`` each split is its own task file ``<split>.xml`` (its meta
names the subset); this is also the layout datumaro reads and writes, one file per subset, and what CVAT's project
import turns into one task per subset. Without ``--split`` the file is ``annotations.xml``, as in CVAT's export.

A frame that failed (``--errors``) is left out: CVAT has no way to mark an image as not looked at, and an image
without boxes would say the model found nothing there.

Frames are written as they arrive; the image count in the meta is known only at the end, so the images are
spooled to disk and the meta put before them when the file is published (memory holds one frame).
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from common.storage import Location
from exports.records import Categories, FrameRecord
from exports.spool import Spool
from exports.target import ExportTarget
from schemas.export_config import ExportConfig

ANNOTATIONS_FILE = "annotations.xml"
DEFAULT_SUBSET = "default"
"""The subset CVAT names in a task's meta when the task has none."""
SCORE_ATTRIBUTE = "score"


def writer(config: ExportConfig, categories: Categories, target: Location) -> CvatWriter:
    return CvatWriter(config, categories, target)


class CvatWriter:
    """One ``TaskFile`` per split, in ``--split``'s order (or one for all frames), published on ``close``."""

    def __init__(self, config: ExportConfig, categories: Categories, target: Location) -> None:
        self._categories = categories
        self._target = ExportTarget(target)
        splits: list[str | None] = list(config.split) if config.split else [None]
        self._files = {split: self._open(split) for split in splits}  # an empty split is an empty task, as asked

    def write(self, frame: FrameRecord) -> None:
        if frame.error is not None:
            return
        file = self._files.get(frame.split)
        if file is None:
            file = self._files[frame.split] = self._open(frame.split)
        file.add(frame)

    def close(self) -> list[str]:
        for file in self._files.values():
            file.publish()
        return [file.name for file in self._files.values()]

    def _open(self, split: str | None) -> TaskFile:
        name = ANNOTATIONS_FILE if split is None else f"{split}.xml"
        return TaskFile(self._target.spool(name), name, split, self._categories)


class TaskFile:
    """One CVAT task's XML: images appended as they come, the meta (with their count) put first on publish."""

    def __init__(self, spool: Spool, name: str, split: str | None, categories: Categories) -> None:
        self.name = name
        self._split = split
        self._categories = categories
        self._spool = spool
        self._images = 0

    def add(self, frame: FrameRecord) -> None:
        self._spool.write(image_element(self._images, frame, self._categories))
        self._images += 1

    def publish(self) -> None:
        self._spool.write("</annotations>\n")
        self._spool.publish(header=document_head(self._images, self._split, self._categories))


def document_head(size: int, split: str | None, categories: Categories) -> str:
    """The XML declaration, ``<annotations>``, the version and the task meta with its labels."""
    task_name = "yolonas-batch" if split is None else f"yolonas-batch {split}"
    labels = "".join(label_xml(name) for name in categories.names)
    return (
        task_head(task_name, size, "annotation") + f"      <subset>{escape(split or DEFAULT_SUBSET)}</subset>\n"
        "      <labels>\n"
        f"{labels}"
        "      </labels>\n"
        "    </task>\n"
        "  </meta>\n"
    )


def task_head(name: str, size: int, mode: str) -> str:
    """The XML declaration, ``<annotations>``, the version and a task meta's first elements, as CVAT orders them;
    ``mode``: ``annotation`` (images) or ``interpolation`` (video)."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        "<annotations>\n"
        "  <version>1.1</version>\n"
        "  <meta>\n"
        "    <task>\n"
        f"      <name>{escape(name)}</name>\n"
        f"      <size>{size}</size>\n"
        f"      <mode>{mode}</mode>\n"
        "      <overlap>0</overlap>\n"
        "      <flipped>False</flipped>\n"
    )


def label_xml(name: str, mutable: bool = False) -> str:
    """A label of the task's meta with its ``score`` text attribute; ``mutable`` where it changes from frame to
    frame of one track (CVAT keeps an immutable attribute once per track)."""
    return (
        "        <label>\n"
        f"          <name>{escape(name)}</name>\n"
        "          <type>bbox</type>\n"
        "          <attributes>\n"
        "            <attribute>\n"
        f"              <name>{SCORE_ATTRIBUTE}</name>\n"
        f"              <mutable>{mutable}</mutable>\n"
        "              <input_type>text</input_type>\n"
        "              <default_value></default_value>\n"
        "              <values></values>\n"
        "            </attribute>\n"
        "          </attributes>\n"
        "        </label>\n"
    )


def image_element(image_id: int, frame: FrameRecord, categories: Categories) -> str:
    """``<image>`` with one ``<box>`` per detection, corners in pixels with two decimals as CVAT writes them."""
    boxes = "".join(
        f'    <box label={quoteattr(categories.names[box.category])} source="auto" occluded="0" '
        f'xtl="{box.x1:.2f}" ytl="{box.y1:.2f}" xbr="{box.x2:.2f}" ybr="{box.y2:.2f}" z_order="0">\n'
        f'      <attribute name="{SCORE_ATTRIBUTE}">{box.score:.4f}</attribute>\n'
        "    </box>\n"
        for box in frame.boxes
    )
    return (
        f'  <image id="{image_id}" name={quoteattr(frame.name)} width="{frame.width}" height="{frame.height}">\n'
        f"{boxes}"
        "  </image>\n"
    )
