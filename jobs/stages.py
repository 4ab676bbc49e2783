"""The two Ray Data stages: decode + letterbox on CPU tasks, and detection in model actors.

Both take and return column batches. A failure of one input (unreadable, undecodable) becomes an ``error``
row right here, so every planned input leaves the pipeline as exactly one row; only infrastructure failures
(a dead actor, a lost node) surface as exceptions, which Ray retries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import ray

from jobs.storage import location
from schemas.tables import BOX_TYPE, RESULTS_SCHEMA, STATUS_ERROR, STATUS_OK
from workers.detector import Detector, FrameBatch, Thresholds
from workers.preprocess import DecodeError, Letterboxed, LetterboxSpec, decode_image, letterbox
from workers.weights import Weights

_PASSTHROUGH = ("shard_id", "partition", "source_uri")
_NO_ERROR = ""
"""Between stages an ok row's error is an empty string: Ray turns None in object columns into NaN."""


def decode_batch(
    batch: dict[str, np.ndarray], spec: LetterboxSpec, storage_options: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Read, decode and letterbox each input; an input that fails gets an error row and a blank canvas."""
    uris = [str(u) for u in batch["source_uri"]]
    blank = np.full((*spec.canvas, 3), spec.pad_value, dtype=np.uint8)
    images, geometry, status, errors = [], [], [], []
    for uri in uris:
        try:
            frame = _load(uri, spec, storage_options)
        except _StageError as exc:
            images.append(blank)
            geometry.append((0, 0, 1.0, 0, 0))
            status.append(STATUS_ERROR)
            errors.append(str(exc))
            continue
        images.append(frame.image)
        geometry.append((frame.height, frame.width, frame.scale, frame.pad_top, frame.pad_left))
        status.append(STATUS_OK)
        errors.append(_NO_ERROR)
    heights, widths, scales, tops, lefts = (np.array(col) for col in zip(*geometry))
    return {
        **{name: batch[name] for name in _PASSTHROUGH},
        "frame_index": np.zeros(len(uris), dtype=np.int64),
        "image": np.stack(images),
        "height": heights.astype(np.int32),
        "width": widths.astype(np.int32),
        "scale": scales.astype(np.float64),
        "pad_top": tops.astype(np.int32),
        "pad_left": lefts.astype(np.int32),
        "status": np.array(status, dtype=object),
        "error": np.array(errors, dtype=object),
    }


class _StageError(Exception):
    """One input failed in one stage; the message is ``stage: cause``."""


def _load(uri: str, spec: LetterboxSpec, storage_options: dict[str, Any]) -> Letterboxed:
    try:
        data = location(uri, storage_options).read_bytes()
    except FileNotFoundError:
        raise _StageError("read: file not found") from None
    except (OSError, ValueError) as exc:
        raise _StageError(f"read: {type(exc).__name__}: {exc}") from None
    try:
        return letterbox(decode_image(data), spec)
    except DecodeError as exc:
        raise _StageError(f"decode: {exc}") from None
    except Exception as exc:  # OpenCV raises cv2.error and others for hostile files; all are this input's fault
        raise _StageError(f"decode: {type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}") from None


class DetectStage:
    """Ray Data callable class: holds one ``Detector`` per actor, built once, and answers each batch."""

    def __init__(
        self,
        model_name: str,
        weights: "Weights | ray.ObjectRef",
        spec: LetterboxSpec,
        device: str,
        thresholds: Thresholds,
        threads: int,
    ) -> None:
        import torch

        if isinstance(weights, ray.ObjectRef):
            weights = ray.get(weights)
        if device == "cpu":
            torch.set_num_threads(threads)
        self.detector = Detector(model_name, weights, spec, device=device, thresholds=thresholds)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        ok = np.flatnonzero(batch["status"] == STATUS_OK)
        counts = np.zeros(len(batch["status"]), dtype=np.int32)
        boxes = pa.array([], type=BOX_TYPE)
        if ok.size:
            found = self.detector.detect(
                FrameBatch(
                    images=batch["image"][ok],
                    heights=batch["height"][ok],
                    widths=batch["width"][ok],
                    scales=batch["scale"][ok],
                    pad_tops=batch["pad_top"][ok],
                    pad_lefts=batch["pad_left"][ok],
                )
            )
            counts[ok] = found.counts
            boxes = pa.StructArray.from_arrays(
                [pa.array(found.class_ids), pa.array(found.scores)]
                + [pa.array(np.ascontiguousarray(found.boxes[:, i])) for i in range(4)],
                fields=list(BOX_TYPE),
            )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        failed = batch["status"] != STATUS_OK
        return pa.table(
            {
                **{name: pa.array(batch[name].tolist(), pa.string()) for name in _PASSTHROUGH},
                "frame_index": pa.array(batch["frame_index"], pa.int64()),
                "timestamp_s": pa.nulls(len(counts), pa.float64()),
                "width": pa.array(np.where(failed, None, batch["width"]).tolist(), pa.int32()),
                "height": pa.array(np.where(failed, None, batch["height"]).tolist(), pa.int32()),
                "status": pa.array(batch["status"].tolist(), pa.string()),
                "error": pa.array([e or None for e in batch["error"].tolist()], pa.string()),
                "boxes": pa.ListArray.from_arrays(pa.array(offsets), boxes),
            },
            schema=RESULTS_SCHEMA,
        )
