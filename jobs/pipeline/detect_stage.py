"""The model stage of the Ray Data pipeline: one ``Detector`` per actor, fed the decode stage's batches."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pyarrow as pa
import ray

from jobs.pipeline.decode_stage import PASSTHROUGH
from jobs.pipeline.in_flight import Suspect, process_name
from schemas.choices import Precision, Runtime
from schemas.tables import BOX_TYPE, RESULTS_SCHEMA, STATUS_ERROR, STATUS_OK, frame_keys
from workers.detector import Detections, Detector, Thresholds
from workers.device_frames import DeviceFrames
from workers.errors import one_line
from workers.frames import FrameBatch, frame_batch
from workers.letterbox import LetterboxSpec
from workers.onnx_runtime import onnx_detector
from workers.weights import Weights


class DetectStage:
    """Ray Data callable class: holds one ``Detector`` per actor, built once, and answers each batch."""

    def __init__(
        self,
        model_name: str,
        model: "Weights | bytes | ray.ObjectRef",
        spec: LetterboxSpec,
        device: str,
        batch_size: int,
        thresholds: Thresholds,
        threads: int,
        precision: Precision = "fp32",
        runtime: Runtime = "torch",
        in_flight: ray.actor.ActorHandle | None = None,
    ) -> None:
        """``model``: the weights (the actor builds and fuses the model), or the fused model as TorchScript
        bytes (``workers.detector.trace_fused``) or, for ONNX Runtime, ONNX bytes
        (``workers.onnx_runtime.export_onnx``); both load without importing super-gradients.
        ``in_flight``: the registry of frames in flight (``jobs.pipeline.in_flight``), told of each batch.
        ``batch_size``: the frames a batch brings; on a GPU the model runs them in the largest chunks that fit."""
        import torch

        self.in_flight = in_flight
        self.device_frames = DeviceFrames(spec, device)
        """Makes the canvases of ``--decode device`` batches (their JPEGs still encoded) on the model's device."""
        self.process = process_name()
        loaded: Weights | bytes = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        if device == "cpu":
            torch.set_num_threads(threads)
        if isinstance(loaded, bytes) and runtime == "onnxruntime":
            self.detector = onnx_detector(loaded, spec, thresholds=thresholds, threads=threads)
        elif isinstance(loaded, bytes):
            self.detector = Detector.from_torchscript(
                loaded, spec, device=device, thresholds=thresholds, precision=precision
            )
        else:
            self.detector = Detector.from_weights(
                model_name, loaded, spec, device=device, thresholds=thresholds, precision=precision
            )
        if device == "cuda":
            self.detector.fit_batch(batch_size)

    def __call__(self, batch: dict[str, Any]) -> pa.Table:
        status, error = batch["status"].copy(), batch["error"].copy()
        if "payload" in batch:
            batch = self._on_device(batch, status, error)
        ok = np.flatnonzero(status == STATUS_OK)
        counts = np.zeros(len(status), dtype=np.int32)
        boxes = pa.array([], type=BOX_TYPE)
        if ok.size:
            answered, found = self._guarded(batch, ok)
            for row, message in answered.items():
                status[row], error[row] = STATUS_ERROR, message
            ok = np.setdiff1d(ok, list(answered))
            counts[ok] = found.counts
            boxes = pa.StructArray.from_arrays(
                [pa.array(found.class_ids), pa.array(found.scores)]
                + [pa.array(np.ascontiguousarray(found.boxes[:, i])) for i in range(4)],
                fields=list(BOX_TYPE),
            )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        failed = status != STATUS_OK
        return pa.table(
            {
                **{name: pa.array(batch[name].tolist(), pa.string()) for name in PASSTHROUGH},
                "item": pa.array(batch["item"], pa.int64()),
                "item_rows": pa.array(batch["item_rows"], pa.int32()),
                "frame_index": pa.array(batch["frame_index"], pa.int64()),
                "timestamp_s": pa.array(batch["timestamp_s"], pa.float64(), from_pandas=True),
                "width": pa.array(batch["width"], pa.int32(), mask=failed),
                "height": pa.array(batch["height"], pa.int32(), mask=failed),
                "status": pa.array(status.tolist(), pa.string()),
                "error": pa.array([e or None for e in error.tolist()], pa.string()),
                "boxes": pa.ListArray.from_arrays(pa.array(offsets), boxes),
            },
            schema=RESULTS_SCHEMA,
        )

    def _guarded(self, batch: dict[str, Any], rows: np.ndarray) -> tuple[dict[int, str], Detections]:
        """Detections of ``rows``, and error messages of the rows that get none: frames a model process died on
        ``POISON_DEATHS`` times alone, and frames the model raised on. A batch holding frames that were in flight
        when a process died runs one frame at a time, so a frame that kills the process is found alone."""
        keys = [int(k) for k in frame_keys(batch["item"][rows], batch["frame_index"][rows])]
        suspects = self._begin(keys)
        try:
            if not suspects:
                try:
                    return {}, self.detector.detect(_frames(batch, rows))
                except Exception:  # a frame the model cannot take, or a batch too large: each frame alone says which
                    pass
            answered: dict[int, str] = {}
            found = []
            for row, key in zip(rows.tolist(), keys):
                suspect = suspects.get(key)
                if suspect is not None and suspect.poison:
                    answered[row] = f"model: its process died each time it ran this frame ({suspect.alone} times)"
                    continue
                self._begin([key])
                try:
                    found.append(self.detector.detect(_frames(batch, np.array([row]))))
                except Exception as exc:  # the frame's own error: an error row, the batch goes on
                    answered[row] = f"model: {one_line(exc)}"
            return answered, Detections.concat(found) if found else Detections.empty()
        finally:
            self._end()

    def _on_device(self, batch: dict[str, np.ndarray], status: np.ndarray, error: np.ndarray) -> dict[str, Any]:
        """The batch with its canvases made on the model's device (``image``, a tensor); a JPEG that cannot be
        decoded makes its row an error row."""
        images, failed = self.device_frames.build(batch)
        for row, message in failed.items():
            status[row], error[row] = STATUS_ERROR, message
        return {**batch, "image": images}

    def _begin(self, keys: list[int]) -> dict[int, Suspect]:
        if self.in_flight is None:
            return {}
        return cast(dict[int, Suspect], ray.get(self.in_flight.begin.remote(self.process, keys)))

    def _end(self) -> None:
        if self.in_flight is not None:
            self.in_flight.end.remote(self.process)


def _frames(batch: dict[str, Any], rows: np.ndarray) -> FrameBatch:
    # Selecting rows copies the frames (1.2 MB each at 640x640); when every frame is ok, as is usual, the batch is
    # taken as it came.
    return frame_batch(batch, slice(None) if rows.size == len(batch["status"]) else rows)
