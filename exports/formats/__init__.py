"""The export formats, each a ``FormatWriter`` made by ``writer(config, categories, target)``.

Each module imports only what its format needs, so the registry names them lazily."""

from __future__ import annotations

from importlib import import_module
from typing import Callable

from common.storage import Location
from exports.records import Categories, FormatWriter, TrackWriter
from schemas.export_config import ExportConfig, ExportFormat

MODULES: dict[ExportFormat, str] = {
    "label-studio": "exports.formats.label_studio",
    "coco": "exports.formats.coco",
    "yolo": "exports.formats.yolo",
    "cvat": "exports.formats.cvat",
    "label-studio-video": "exports.formats.label_studio_video",
    "cvat-video": "exports.formats.cvat_video",
    "mot": "exports.formats.mot",
}
"""Each module defines ``writer(config: ExportConfig, categories: Categories, target: Location)``, returning a
``FormatWriter`` (frames), or a ``TrackWriter`` for the formats of tracks (``TRACK_FORMATS``)."""


def writer(config: ExportConfig, categories: Categories, target: Location) -> FormatWriter | TrackWriter:
    """The writer of ``config.format``, writing under ``target``."""
    make: Callable[[ExportConfig, Categories, Location], FormatWriter | TrackWriter]
    make = import_module(MODULES[config.format]).writer
    return make(config, categories, target)
