"""The job's configuration: one validated model, built from the CLI and saved with every run."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.choices import (
    DEFAULT_CONF,
    DEFAULT_IOU,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_MAX_DET,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MODEL,
    DEFAULT_STALL_TIMEOUT_S,
    DEFAULT_STOP_GRACE_S,
    MIN_LEASE_TTL_S,
    DecodeMode,
    Device,
    ModelName,
    OverwriteScope,
    Precision,
    RuntimeChoice,
)


class JobConfig(BaseModel):
    """Everything that decides what a run reads, computes and writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[str] = Field(min_length=1)
    output: str
    model: ModelName = DEFAULT_MODEL
    weights: str = "coco"
    num_classes: int | None = Field(default=None, gt=0)
    class_names: str | None = None
    trust_checkpoint: bool = False
    conf: float = Field(default=DEFAULT_CONF, gt=0, le=1)
    iou: float = Field(default=DEFAULT_IOU, gt=0, le=1)
    max_det: int = Field(default=DEFAULT_MAX_DET, gt=0)
    batch_size: int | None = Field(default=None, gt=0)
    workers: int | None = Field(default=None, gt=0)
    actors_per_gpu: int = Field(default=2, gt=0)
    """Model actors sharing one GPU: while one waits on the host (uploads, NMS results, Arrow output), another
    keeps the GPU busy."""
    decode_workers: int | None = Field(default=None, gt=0)
    """Decode tasks running at once at most; None lets Ray Data use every CPU the model actors leave free."""
    write_workers: int | None = Field(default=None, gt=0)
    """Write tasks (staging result rows to the output) at once at most; None: ``resources.write_workers_for``."""
    device: Device | None = None
    precision: Precision = "fp32"
    runtime: RuntimeChoice = "auto"
    video_stride: int | None = Field(default=None, gt=0)
    video_fps: float | None = Field(default=None, gt=0)
    max_frames: int | None = Field(default=None, gt=0)
    decode: DecodeMode = "exact"
    max_image_pixels: int = Field(default=DEFAULT_MAX_PIXELS, gt=0)
    """Images declaring more pixels are refused unread (decompression bombs): an ``error`` row."""
    video_segment_frames: int = Field(default=1800, gt=0)
    """Decoded frames per video range: a longer video is spread over the model actors in ranges this long."""
    shard_size: int = Field(default=1000, gt=0)
    overwrite: OverwriteScope | None = None
    """Delete earlier output before planning: this model's runs (``model``) or every run (``all``)."""
    incremental: bool = False
    """Process only inputs new or changed since earlier runs of the same model into the same output."""
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    stall_timeout: float = Field(default=DEFAULT_STALL_TIMEOUT_S, gt=0)
    """Seconds without a finished frame or a committed shard after which a pipeline run is ended and retried."""
    lease_ttl: float = Field(default=DEFAULT_LEASE_TTL_S, ge=MIN_LEASE_TTL_S)
    """Seconds the output's lease lasts unrenewed: how long a killed run keeps the next one out."""
    stop_grace: float = Field(default=DEFAULT_STOP_GRACE_S, ge=0)
    """Seconds a run stopped by SIGTERM, SIGINT or SIGHUP waits for the shards it is publishing before it cancels
    them and records the attempt as ``interrupted``."""
    track: bool = False
    """After the run, track the objects of the output's videos (``yolonas-batch track`` with its defaults)."""
    iceberg: str | None = None
    """A catalog (``yolonas-batch iceberg --catalog``'s: ``local``, a SQLAlchemy URI or a configured catalog's name):
    publish committed shards to its tables while the run goes (``jobs.commit.iceberg``). Saved with the run without
    the password a database URI may hold; a named catalog's configuration (its credentials) is never read into it."""
    iceberg_namespace: str | None = None
    """The tables' namespace; None: made from the output folder's name, as ``yolonas-batch iceberg`` makes it."""
    ray_address: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Extra fsspec options; may hold secrets, so never logged nor saved (see ``public_dump``)."""

    @model_validator(mode="after")
    def _one_video_sampling(self) -> "JobConfig":
        if self.video_stride is not None and self.video_fps is not None:
            raise ValueError("give --video-stride or --video-fps, not both")
        if self.iceberg_namespace is not None and self.iceberg is None:
            raise ValueError("--iceberg-namespace needs --iceberg")
        return self

    def public_dump(self) -> dict[str, Any]:
        """The config as saved in the run manifest: storage options reduced to their key names, the catalog URI
        without its password."""
        data = self.model_dump(mode="json", exclude={"storage_options"})
        data["storage_option_keys"] = sorted(self.storage_options)
        if self.iceberg is not None:
            data["iceberg"] = redacted_uri(self.iceberg)
        return data

    def model_fingerprint(self, weights_sha256: str) -> str:
        """Identity of what a run computes for one input: model, weights, precision, thresholds, sampling.
        Inputs that an earlier run with the same model fingerprint committed are what ``--incremental`` skips."""
        return _digest(
            self.model_dump(
                mode="json",
                include={"model", "num_classes", "class_names", "conf", "iou", "max_det", "precision"}
                | {"video_stride", "video_fps", "max_frames", "max_image_pixels"},
            )
            | {"weights_sha256": weights_sha256}
            # Named only when not the default, so outputs of earlier releases keep their fingerprints.
            | ({"decode": self.decode} if self.decode != "exact" else {})
        )

    def fingerprint(self, weights_sha256: str) -> str:
        """Identity of the output a run produces: same fingerprint, same rows; resume relies on it."""
        layout = self.model_dump(mode="json", include={"sources", "video_segment_frames", "shard_size"})
        return _digest(layout | {"model": self.model_fingerprint(weights_sha256)})


def redacted_uri(text: str) -> str:
    """``text`` without the password a database URI in it may hold (``postgresql://user:secret@host`` becomes
    ``postgresql://user:***@host``): what is saved or logged of a catalog URI, or of an error that quotes one."""
    return re.sub(r"(//[^/:@]*):[^/@]*@", r"\1:***@", text)


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
