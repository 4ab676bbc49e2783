"""The configuration of ``yolonas-batch track``: the tracker's settings, which decide the tracks, and the run's."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.choices import DEFAULT_LEASE_TTL_S, DEFAULT_STALL_TIMEOUT_S, DEFAULT_STOP_GRACE_S, MIN_LEASE_TTL_S

TrackerName = Literal["bytetrack"]


class TrackerSettings(BaseModel):
    """What the tracks of a video depend on besides its detections: part of every video's key, so tracking with
    other settings writes new tracks, and the same settings find their work done."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracker: TrackerName = "bytetrack"
    high_score: float = Field(default=0.5, gt=0, le=1)
    """Boxes scored at least this are matched first; the others only continue tracks that lost their box."""
    new_track_score: float = Field(default=0.6, gt=0, le=1)
    """A track starts only from a box scored at least this (and at least ``high_score``)."""
    min_iou: float = Field(default=0.2, gt=0, le=1)
    """A box continues a track only if it overlaps the track's predicted box by at least this IoU."""
    lost_after: float = Field(default=1.0, gt=0)
    """Seconds of video a track survives unseen (an occlusion) before it ends: time, not frames, so a sampled
    video (``--video-stride``, ``--video-fps``) keeps tracks as long as one decoded in full."""

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()


class TrackConfig(BaseModel):
    """One ``track`` run: which output, which detections, how to track them, how to run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output: str
    run_id: str | None = None
    """Track only this run's detections; None takes every run's, the newest row per frame (as ``export``)."""
    settings: TrackerSettings = TrackerSettings()
    ray_address: str | None = None
    stall_timeout: float = Field(default=DEFAULT_STALL_TIMEOUT_S, gt=0)
    lease_ttl: float = Field(default=DEFAULT_LEASE_TTL_S, ge=MIN_LEASE_TTL_S)
    stop_grace: float = Field(default=DEFAULT_STOP_GRACE_S, ge=0)
    """Seconds a run stopped by a signal waits for the videos being tracked before it cancels them."""
    iceberg: str | None = Field(default=None, repr=False)
    """A catalog URI (``detect --iceberg``'s): publish committed tracks to its tables ``tracks`` and
    ``track_summaries`` while the run goes. May hold a database password, so never shown."""
    iceberg_namespace: str | None = None
    """The tables' namespace; None: made from the output folder's name, as ``detect --iceberg`` makes it."""
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Extra fsspec options for ``output``; may hold secrets, never logged."""

    @model_validator(mode="before")
    @classmethod
    def _settings_from_flags(cls, values: Any) -> Any:
        """The command line's flat tracker flags (``--high-score`` …) become ``settings``."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        flat = {k: values.pop(k) for k in list(values) if k in TrackerSettings.model_fields}
        given = {k: v for k, v in flat.items() if v is not None}
        if given:
            values["settings"] = {**dict(values.get("settings") or {}), **given}
        return values

    @model_validator(mode="after")
    def _namespace_needs_a_catalog(self) -> "TrackConfig":
        if self.iceberg_namespace is not None and self.iceberg is None:
            raise ValueError("--iceberg-namespace needs --iceberg")
        return self
