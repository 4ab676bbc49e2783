"""The decode stage of the Ray Data pipeline: read, decode and letterbox on CPU tasks (with ``--decode device``,
JPEGs are only read and checked here, and decoded by the model actors).

It takes and returns column batches and imports no torch, so decode workers start in a fraction of a model
actor's time (``jobs/pipeline/detect_stage.py`` is the model side). A failure of one input (unreadable, undecodable, a
video that breaks) becomes an ``error`` row right here, so every planned frame leaves the pipeline as exactly
one row; only infrastructure failures (a dead actor, a lost node) surface as exceptions, which Ray retries.

A work item (an image, or a frame range of a video) gives one or more rows; its last row carries the number of
rows the item gave (``item_rows``), which is how the driver knows a shard is complete. A video range that holds
no frame at all (a frame count that overestimated) gives one placeholder row (status ``none``) the driver drops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import cv2
import numpy as np

from common.storage import location
from schemas.choices import DecodeMode
from schemas.tables import STATUS_ERROR, STATUS_NONE, STATUS_OK
from workers.decoding import Decoded, decode_for
from workers.errors import one_line
from workers.frames import EncodedJpeg, FrameBatchBuilder, PayloadBatchBuilder
from workers.image_checks import DecodeError
from workers.letterbox import Channels, Letterboxed, LetterboxSpec, letterbox
from workers.video import BrokenVideo, Sampling, VideoError, VideoInfo, decode_frames, probe_video

PASSTHROUGH = ("shard_id", "partition", "source_uri")
"""Columns every row carries from its work item to the output unchanged."""
DECODE_TASK_CPUS = 1
"""The CPUs a decode task holds, so the threads its OpenCV and FFmpeg may use."""
_NO_ERROR = ""
"""Between stages an ok row's error is an empty string: Ray turns None in object columns into NaN."""


@dataclass(frozen=True)
class Decoding:
    """How the CPU stage turns work items into model inputs."""

    spec: LetterboxSpec
    sampling: Sampling
    storage_options: dict[str, Any]
    rows_per_batch: int
    """Frame rows per yielded batch, so a long video range never sits in memory whole."""
    max_pixels: int
    """Images declaring more pixels are refused unread (decompression bombs)."""
    mode: DecodeMode = "exact"
    """``fast``: a large JPEG decoded by libjpeg at the reduction the letterbox allows, a video frame scaled by
    FFmpeg as it is converted to RGB. ``device``: a JPEG is passed on encoded, for the model actor to decode on its
    device (``workers.device_frames``), and every other frame as its rescaled pixels, with no canvas."""


@dataclass(frozen=True)
class _Row:
    frame_index: int
    timestamp_s: float
    frame: Letterboxed | EncodedJpeg | None
    status: str
    error: str


def decode_batch(batch: dict[str, np.ndarray], decoding: Decoding) -> Iterator[dict[str, np.ndarray]]:
    """Read, decode and letterbox each work item; yields batches of at most ``decoding.rows_per_batch`` frame
    rows. A frame that fails gets an error row and a blank canvas."""
    # OpenCV would otherwise split each resize over a thread per core of the node, competing with the other
    # decode tasks and the model actors for them (FFmpeg likewise: ``_video_rows``).
    cv2.setNumThreads(DECODE_TASK_CPUS)
    rows = _Rows(decoding)
    for i in range(len(batch["source_uri"])):
        for row, item_rows in _item_rows({name: batch[name][i] for name in batch}, decoding):
            rows.add(i, row, item_rows)
            if rows.full():
                yield rows.columns(batch)
                rows = _Rows(decoding)
    if len(rows):
        yield rows.columns(batch)


class _Rows:
    """One output batch in the making: each frame goes onto its canvas in the batch array as it is added."""

    def __init__(self, decoding: Decoding) -> None:
        self._frames = (
            PayloadBatchBuilder(decoding.rows_per_batch)
            if decoding.mode == "device"
            else FrameBatchBuilder(decoding.spec, decoding.rows_per_batch)
        )
        self._rows: list[tuple[int, int, int, float, str, str]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def full(self) -> bool:
        return self._frames.full()

    def add(self, item: int, row: _Row, item_rows: int) -> None:
        self._frames.add(row.frame)
        self._rows.append((item, item_rows, row.frame_index, row.timestamp_s, row.status, row.error))

    def columns(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        item, item_rows, frame_index, timestamp_s, status, error = zip(*self._rows)
        index = np.array(item)
        return {
            **{name: batch[name][index] for name in PASSTHROUGH + ("item",)},
            "item_rows": np.array(item_rows, dtype=np.int32),
            "frame_index": np.array(frame_index, dtype=np.int64),
            "timestamp_s": np.array(timestamp_s, dtype=np.float64),
            **self._frames.columns(),
            "status": np.array(status, dtype=object),
            "error": np.array(error, dtype=object),
        }


def _item_rows(item: dict[str, Any], decoding: Decoding) -> Iterator[tuple[_Row, int]]:
    """The rows of one work item, each with ``item_rows`` (0, except on the item's last row)."""
    rows = _image_rows(item, decoding) if item["kind"] == "image" else _video_rows(item, decoding)
    previous, count = None, 0
    for row in rows:
        if previous is not None:
            yield previous, 0
        previous, count = row, count + 1
    yield (previous, count) if previous is not None else (_Row(0, math.nan, None, STATUS_NONE, _NO_ERROR), 1)


def _image_rows(item: dict[str, Any], decoding: Decoding) -> Iterator[_Row]:
    try:
        data = _read(str(item["source_uri"]), decoding.storage_options)
        frame: Letterboxed | EncodedJpeg | None = _encoded(data, decoding) if decoding.mode == "device" else None
        if frame is None:
            decoded = _decode(data, decoding)
            frame = _letterbox(decoded.image, decoding.spec, "bgr", (decoded.height, decoded.width))
    except _StageError as exc:
        yield _Row(0, math.nan, None, STATUS_ERROR, str(exc))
        return
    yield _Row(0, math.nan, frame, STATUS_OK, _NO_ERROR)


def _video_rows(item: dict[str, Any], decoding: Decoding) -> Iterator[_Row]:
    """Sampled frames of the item's range; where decoding breaks, an error row at the frame it broke on.

    An error row never reuses the number of a frame already given: rows are told apart by (item, frame index),
    and the driver would drop a second row for a frame as a re-delivery, losing the item's row count with it."""
    uri, start = str(item["source_uri"]), int(item["frame_start"])
    stop = None if _missing(item["frame_stop"]) else int(item["frame_stop"])
    unused = start
    """The first frame number no row of this item has used yet: where a failure that names no frame is put."""
    try:
        with location(uri, decoding.storage_options).open_input() as handle:
            info = _video_info(item, handle)
            fit = decoding.spec if decoding.mode == "fast" else None
            for decoded in decode_frames(handle, start, stop, decoding.sampling, info, fit, DECODE_TASK_CPUS):
                unused = decoded.index + 1
                try:
                    frame = _letterbox(decoded.image, decoding.spec, "rgb", decoded.full)
                except _StageError as exc:
                    yield _Row(decoded.index, decoded.timestamp_s, None, STATUS_ERROR, str(exc))
                    continue
                yield _Row(decoded.index, decoded.timestamp_s, frame, STATUS_OK, _NO_ERROR)
    except FileNotFoundError:
        yield _Row(unused, _timestamp(item, unused), None, STATUS_ERROR, "read: file not found")
    except BrokenVideo as exc:
        at = max(exc.at, unused)
        yield _Row(at, _timestamp(item, at), None, STATUS_ERROR, f"decode: {exc}")
    except VideoError as exc:
        yield _Row(unused, _timestamp(item, unused), None, STATUS_ERROR, f"decode: {exc}")
    except OSError as exc:
        yield _Row(unused, _timestamp(item, unused), None, STATUS_ERROR, f"read: {type(exc).__name__}: {exc}")


def _timestamp(item: dict[str, Any], frame_index: int) -> float:
    """Seconds from the start of the video to ``frame_index``; NaN (null in the table) when the rate is unknown."""
    return frame_index / item["fps"] if not _missing(item["fps"]) else math.nan


def _video_info(item: dict[str, Any], handle: Any) -> VideoInfo:
    """The header as planning probed it, or probed now when planning could not."""
    if _missing(item["fps"]):
        info = probe_video(handle)
        handle.seek(0)
        return info
    frames = None if _missing(item["video_frames"]) else int(item["video_frames"])
    return VideoInfo(fps=float(item["fps"]), frames=frames, exact_count=frames is not None, splittable=True)


def _missing(value: Any) -> bool:
    """Null as Ray Data hands it over in numpy batches (None, or NaN in float columns)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


class _StageError(Exception):
    """One input failed in one stage; the message is ``stage: cause``."""


def _read(uri: str, storage_options: dict[str, Any]) -> bytes:
    try:
        return location(uri, storage_options).read_bytes()
    except FileNotFoundError:
        raise _StageError("read: file not found") from None
    except (OSError, ValueError) as exc:
        raise _StageError(f"read: {type(exc).__name__}: {exc}") from None


def _decode(data: bytes, decoding: Decoding) -> Decoded:
    """The image in OpenCV's channel order (``_letterbox`` puts them in the model's order after the rescale);
    with ``fast``, a large JPEG decoded reduced to what the letterbox needs."""
    try:
        return decode_for(data, decoding.spec if decoding.mode == "fast" else None, decoding.max_pixels, "bgr")
    except DecodeError as exc:
        raise _StageError(f"decode: {exc}") from None
    except Exception as exc:  # OpenCV raises cv2.error and others for hostile files; all are this input's fault
        raise _StageError(f"decode: {one_line(exc)}") from None


def _encoded(data: bytes, decoding: Decoding) -> EncodedJpeg | None:
    """A JPEG as it will travel to the model's device; None for another format, which is decoded here."""
    try:
        return EncodedJpeg.of(data, decoding.spec, decoding.max_pixels)
    except DecodeError as exc:
        raise _StageError(f"decode: {exc}") from None
    except ValueError as exc:  # a frame that would not fit the canvas, as ``_letterbox`` says it
        raise _StageError(f"letterbox: {one_line(exc)}") from None


def _letterbox(
    image: np.ndarray, spec: LetterboxSpec, channels: Channels, full: tuple[int, int] | None = None
) -> Letterboxed:
    try:
        return letterbox(image, spec, channels, full)
    except Exception as exc:  # a frame of a shape OpenCV cannot resize is this input's fault, not the job's
        raise _StageError(f"letterbox: {one_line(exc)}") from None
