"""The configuration of ``yolonas-batch export``: one validated model, built from its command line."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ExportFormat = Literal["label-studio", "coco", "yolo", "cvat", "label-studio-video", "cvat-video", "mot"]
TRACK_FORMATS: frozenset[str] = frozenset({"label-studio-video", "cvat-video", "mot"})
"""Formats of tracks (``yolonas-batch track``): one object followed over a video's frames, not single frames."""


class ExportConfig(BaseModel):
    """What to export from a job's output, how, and where to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str
    """The job's output folder (``--output`` of ``detect``): local or ``s3://``."""
    format: ExportFormat
    to: str
    """Where the export is written: a local folder or ``s3://`` prefix."""
    min_score: float = Field(default=0.0, ge=0, le=1)
    classes: dict[str, str | None] | None = None
    """``--classes``: model class name -> output name (kept as is, renamed, or several merged into one); classes
    not named are dropped. None keeps every class under its own name."""
    run_id: str | None = None
    """Only this run's rows; None takes every run, the newest row per frame."""
    split: dict[str, float] | None = None
    """``--split train=0.8,val=0.2``: shares summing to 1, assigned deterministically by a hash of the URI."""
    include_errors: bool = False
    """``--errors``: frames that failed are left out by default (and counted); with it they are exported without
    boxes where the format can say so."""
    document_root: str | None = None
    """Label Studio: the local folder its local-files storage serves; local images are given relative to it."""
    results: bool = False
    """COCO: also write a COCO results list (``results_<subset>.json``, for ``loadRes``)."""
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Extra fsspec options for ``output`` and ``to``; may hold secrets, never logged."""
