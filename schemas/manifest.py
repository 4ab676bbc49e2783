"""The run manifest (``OUT/_runs/<run_id>.json``), the per-shard commit marker and the lease holders' epoch
records, as validated models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ShardCommit(BaseModel):
    """Written last for a shard, after its Parquet files are published: its presence means "done"."""

    run_id: str
    shard_id: str
    items: int
    """Work items of the shard: images and video frame ranges."""
    frames: int
    ok: int
    errors: int
    detections: int
    files: list[str]
    committed_at: str
    error_kinds: dict[str, int] = Field(default_factory=dict)
    epoch: int = 0
    """The output lease's epoch it was written under (its name says it too); 0 in markers from before epochs."""


class EpochRecord(BaseModel):
    """``OUT/_runs/_epochs/<epoch>.json``: written by a lease holder before it reads, writes or deletes any shard
    marker or part file, it names the markers of the epochs since the previous record that count (present, and
    every file they name present): a marker of those epochs not named here landed after the holder took over, from
    a writer that had lost the output, and never counts (``common.epochs``)."""

    epoch: int
    follows: int = 0
    """The epoch of the latest record when the holder took the output (0: none): the one before it in the chain of
    records that the rule goes by. A record that lands late, from a holder that lost the output before writing
    it, is followed by no later record, so it never changes what a later holder decided."""
    run_id: str
    """The holder's run: the next holder lists the markers of this run alone (no other run writes under it)."""
    written_at: str
    counted: list[str] = Field(default_factory=list)
    """Markers, as paths relative to ``OUT`` (``schemas.layout.marker``)."""


class ModelInfo(BaseModel):
    """The model a run computes with; fixed when the run is planned."""

    name: str
    weights: str
    weights_sha256: str
    checkpoint_key: str
    num_classes: int
    class_names: list[str]
    precision: str = "fp32"
    license: str | None = None
    """The licence notice of the weights, where the job knows it (Deci's pretrained COCO weights)."""


class Layout(BaseModel):
    """How one attempt laid the run out on the cluster it found (a resumed run may find another cluster)."""

    device: str
    batch_size: int
    workers: int
    runtime: str
    write_workers: int | None = None
    """Write tasks at once (None in manifests from before the write stage)."""


class Attempt(BaseModel):
    """One invocation of a run (its first start, or a resume): what was left, how it ran, how it ended."""

    started_at: str
    pending_items: int
    """Work items of shards not committed when the attempt started."""
    committed_shards_before: int
    leftovers_removed: int
    """Files the attempt's start removed (``ShardMarkers.reconcile``): part files and markers no counting marker
    names (an earlier, killed attempt's, or a stale writer's), partial ``.tmp`` files and staged rows."""
    lease_epoch: int | None = None
    """The epoch of the output's lease this attempt held (``jobs.records.lease``): the manifest and the markers it
    wrote were written under it."""
    layout: Layout | None = None
    """None when the attempt ended before Ray was up (or had nothing to do)."""
    pipeline_runs: int = 0
    """Pipeline runs over the pending shards: 1, plus one per retry after a failure."""
    startup_s: float | None = None
    """From the job's start to its first result."""
    process_startup_s: float | None = None
    """From the process's start to the first result: start-up as the person who typed the command waits for it."""
    finished_at: str | None = None
    wall_s: float | None = None
    frames_per_s: float | None = None
    error: str | None = None
    stopped_by: str | None = None
    """The signal (``SIGTERM``, ``SIGINT``, ``SIGHUP``) that stopped the attempt in order; None when none did."""


class PlanInfo(BaseModel):
    inputs: int
    """Distinct input files planned."""
    items: int
    """Work items: one per image, one per frame range of a video."""
    shards: int
    shard_size: int
    plan_file: str
    skipped: dict[str, int] = Field(default_factory=dict)
    """Files found in the sources but not planned, by reason (e.g. not an image)."""


class Counts(BaseModel):
    frames: int = 0
    ok: int = 0
    error: int = 0
    detections: int = 0
    error_kinds: dict[str, int] = Field(default_factory=dict)


class IcebergState(BaseModel):
    """What ``detect --iceberg`` (``track --iceberg``) last published of the run (``jobs.commit.iceberg``): never
    the catalog's URI."""

    namespace: str
    published_shards: int = 0
    """The run's committed shards both tables hold (``frames`` commits after ``detections``); for ``track``'s
    tables, the videos whose tracks they hold."""
    error: str | None = None
    """Why the last publish failed; None when it succeeded. The next publish adds what it missed."""


class RunManifest(BaseModel):
    """What a run was asked to do, with what, and how it went; rewritten as the run progresses."""

    run_id: str
    fingerprint: str
    model_fingerprint: str = ""
    """``JobConfig.model_fingerprint``: runs that agree on it computed the same answer for an input."""
    run_date: str
    status: Literal["running", "completed", "failed", "interrupted"]
    """``interrupted``: the last attempt was stopped by a signal before every shard was committed (its
    ``stopped_by``); the same command resumes it, as it does a ``failed`` or a killed (still ``running``) one."""
    config: dict[str, Any]
    model: ModelInfo
    plan: PlanInfo
    counts: Counts = Field(default_factory=Counts)
    shards: dict[str, Literal["pending", "committed", "failed"]] = Field(default_factory=dict)
    attempts: list[Attempt] = Field(default_factory=list)
    timings: dict[str, float | str] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    failed_shards: dict[str, str] = Field(default_factory=dict)
    """Shards not committed when the attempt ended (its retries spent, or a bug), with the cause; a rerun tries
    them again."""
    iceberg: IcebergState | None = None
    """Publishing to Iceberg tables (``detect --iceberg``); None without it."""


class TrackCommit(BaseModel):
    """Written last for a video's tracks (``_runs/_tracks/<key>.json``), after their Parquet files: its presence
    means the tracks of that key are complete. It carries what the formats of tracks need to know of the video."""

    key: str
    source_uri: str
    partition: str
    settings: dict[str, Any]
    """The tracker's settings (``TrackerSettings``)."""
    inputs: list[str]
    """The committed ``frames`` part files read (relative to the output), which with the settings make the key."""
    fps: float
    frame_count: int
    """Frames in the whole video: the container's count, or the last frame seen + 1."""
    width: int
    height: int
    frame_step: int
    """Frames between two sampled frames (1: every frame was detected)."""
    frames: int
    """Frames tracked (``ok``); ``error_frames`` were skipped, as frames nothing is known of."""
    error_frames: int
    detections: int
    tracks: int
    boxes: int
    """Boxes in tracks: detections that started or continued one (the rest matched no track)."""
    files: list[str]
    committed_at: str
