"""The model stage of the Ray Data pipeline: one ``Detector`` per actor, fed the decode stage's batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from jobs.pipeline.decode_stage import PASSTHROUGH
from schemas.choices import Precision, Runtime
from schemas.tables import BOX_TYPE, RESULTS_SCHEMA, STATUS_OK
from workers.detector import Detector, Thresholds
from workers.frames import FrameBatch
from workers.onnx_runtime import onnx_detector
from workers.preprocess import LetterboxSpec
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
    ) -> None:
        """``model``: the weights (the actor builds and fuses the model), or the fused model as TorchScript
        bytes (``workers.detector.trace_fused``) or, for ONNX Runtime, ONNX bytes
        (``workers.onnx_runtime.export_onnx``); both load without importing super-gradients.
        ``batch_size``: the frames a batch brings; on a GPU the model runs them in the largest chunks that fit."""
        import torch

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
            self.detector = Detector(
                model_name, loaded, spec, device=device, thresholds=thresholds, precision=precision
            )
        if device == "cuda":
            self.detector.fit_batch(batch_size)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        ok = np.flatnonzero(batch["status"] == STATUS_OK)
        counts = np.zeros(len(batch["status"]), dtype=np.int32)
        boxes = pa.array([], type=BOX_TYPE)
        if ok.size:
            # Selecting rows copies the frames (1.2 MB each at 640x640); when every frame is ok, as is usual, the
            # batch is taken as it came.
            rows = slice(None) if ok.size == counts.size else ok
            found = self.detector.detect(
                FrameBatch(
                    images=batch["image"][rows],
                    heights=batch["height"][rows],
                    widths=batch["width"][rows],
                    scales=batch["scale"][rows],
                    pad_tops=batch["pad_top"][rows],
                    pad_lefts=batch["pad_left"][rows],
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
                **{name: pa.array(batch[name].tolist(), pa.string()) for name in PASSTHROUGH},
                "item": pa.array(batch["item"], pa.int64()),
                "item_rows": pa.array(batch["item_rows"], pa.int32()),
                "frame_index": pa.array(batch["frame_index"], pa.int64()),
                "timestamp_s": pa.array(batch["timestamp_s"], pa.float64(), from_pandas=True),
                "width": pa.array(batch["width"], pa.int32(), mask=failed),
                "height": pa.array(batch["height"], pa.int32(), mask=failed),
                "status": pa.array(batch["status"].tolist(), pa.string()),
                "error": pa.array([e or None for e in batch["error"].tolist()], pa.string()),
                "boxes": pa.ListArray.from_arrays(pa.array(offsets), boxes),
            },
            schema=RESULTS_SCHEMA,
        )
