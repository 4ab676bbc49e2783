"""YOLO-NAS inference on batches of letterboxed frames: one model, built and fused once, reused per batch.

``Detector`` is a plain class with no Ray in it: the Ray job wraps it in an actor, the benchmarks and parity
tests call it in-process. The batch method does the float normalisation, the forward pass, NMS for the whole
batch and the mapping of boxes back to the original frames, all vectorised on the model's device.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypedDict, Unpack

import numpy as np
import torch

from schemas.choices import DEFAULT_CONF, DEFAULT_IOU, DEFAULT_MAX_DET, MODEL_NAMES, Precision
from workers.frames import FrameBatch
from workers.letterbox import LetterboxSpec
from workers.nms import batched_nms
from workers.quiet import super_gradients_models
from workers.weights import Weights, WeightsError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""The torch type of each ``Precision``."""


@dataclass(frozen=True)
class Thresholds:
    """Post-processing of super-gradients' ``predict()`` for YOLO-NAS, with its defaults."""

    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET
    nms_top_k: int = 1024
    """Candidates per image that enter NMS (super-gradients' default for YOLO-NAS)."""


@dataclass(frozen=True)
class Detections:
    """All boxes of a batch, frame by frame in batch order, best score first within a frame."""

    frame: np.ndarray
    """(N,) int64 index of the frame in the batch."""
    boxes: np.ndarray
    """(N, 4) float32 x1, y1, x2, y2 in pixels of the original frame, clipped to it."""
    scores: np.ndarray
    class_ids: np.ndarray
    counts: np.ndarray
    """(B,) int32 boxes per frame."""

    @classmethod
    def empty(cls) -> "Detections":
        """Of a batch of no frames."""
        return cls(
            frame=np.zeros(0, np.int64),
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            class_ids=np.zeros(0, np.int32),
            counts=np.zeros(0, np.int32),
        )

    @classmethod
    def concat(cls, parts: Sequence["Detections"]) -> "Detections":
        """The detections of consecutive chunks of one batch, as if it had run whole."""
        starts = np.cumsum([0] + [len(p.counts) for p in parts[:-1]])
        return cls(
            frame=np.concatenate([p.frame + start for p, start in zip(parts, starts)]),
            **{
                name: np.concatenate([getattr(p, name) for p in parts])
                for name in ("boxes", "scores", "class_ids", "counts")
            },
        )


class DetectorOptions(TypedDict, total=False):
    """How a ``Detector`` runs, as each of its constructors takes it; the defaults are ``Detector.__init__``'s."""

    device: str
    thresholds: Thresholds
    precision: Precision


class Detector:
    """One YOLO-NAS forward pass on one device, answering ``detect(batch)``: the model built from weights
    (``from_weights``), loaded from a trace (``from_torchscript``), or any runtime's forward pass (the constructor)."""

    def __init__(
        self,
        model: Callable[[torch.Tensor], object],
        spec: LetterboxSpec,
        *,
        device: str = "cpu",
        thresholds: Thresholds = Thresholds(),
        precision: Precision = "fp32",
    ) -> None:
        """``model``: a torch module (moved to ``device`` and ``precision``) or another runtime's callable with the
        same inputs and outputs (``workers.onnx_runtime.OnnxForward``)."""
        self.spec = spec
        self.thresholds = thresholds
        self.device = torch.device(device)
        self.dtype = DTYPES[precision]
        # channels-last end to end: the uint8 NHWC batch is already in that layout, and oneDNN/cuDNN convolutions
        # run faster on it (measured in benchmarks/throughput.py) than on NCHW.
        if isinstance(model, torch.nn.Module):
            # torch's stubs leave out memory_format, which Module.to takes (and documents).
            model = model.to(self.device, dtype=self.dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.model = model
        self.max_batch: int | None = None
        """Frames per forward pass (``fit_batch``); None runs every batch whole."""
        if self.device.type == "cuda":
            # One input shape for the whole run: let cuDNN pick its fastest kernels.
            torch.backends.cudnn.benchmark = True
        self._mean = torch.tensor(spec.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(spec.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self._layout = torch.channels_last if isinstance(model, torch.nn.Module) else torch.contiguous_format
        """The input's memory layout: channels-last for torch; another runtime (ONNX Runtime) reads plain NCHW."""
        self._inputs: torch.Tensor | None = None
        """The float input of the last batch, its memory reused by the next (``_normalised``)."""

    @classmethod
    def from_weights(
        cls, model_name: str, weights: Weights, spec: LetterboxSpec, **options: Unpack[DetectorOptions]
    ) -> "Detector":
        """``model_name`` built by super-gradients, ``weights`` loaded strictly, RepVGG branches fused."""
        if model_name not in MODEL_NAMES:
            raise ValueError(f"unknown model {model_name!r}; choose one of {', '.join(MODEL_NAMES)}")
        return cls(_build_fused_model(model_name, weights, spec.canvas), spec, **options)

    @classmethod
    def from_torchscript(cls, data: bytes, spec: LetterboxSpec, **options: Unpack[DetectorOptions]) -> "Detector":
        """The model in ``trace_fused``'s bytes (traced at ``precision``): loading needs torch only, so a model
        actor skips importing super-gradients (most of its start-up on a CPU). Loaded straight onto ``device``."""
        return cls(load_torchscript(data, options.get("device", "cpu")), spec, **options)

    @torch.inference_mode()
    def detect(self, batch: FrameBatch) -> Detections:
        """Run the model on a batch and return its boxes in original-frame pixels. A batch larger than
        ``max_batch`` runs in chunks of that size, with the same result."""
        if self.max_batch is None or len(batch) <= self.max_batch:
            boxes, scores = self._forward(batch.images)
            return _postprocess(boxes.float(), scores.float(), batch, self.thresholds)
        step = self.max_batch
        return Detections.concat([self.detect(batch.slice(i, i + step)) for i in range(0, len(batch), step)])

    @torch.inference_mode()
    def fit_batch(self, limit: int) -> int:
        """The largest batch size, ``limit`` halved until one does, whose forward pass fits in the device's memory;
        ``detect`` then runs larger batches in chunks of it. Running that forward pass once also warms the
        device up (cuDNN chooses its kernels, memory is allocated) before the first real batch."""
        blank = np.full((limit, *self.spec.canvas, 3), self.spec.pad_value, dtype=np.uint8)
        size = limit
        while True:
            try:
                self._forward(blank[:size])
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                break
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                size //= 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        self.max_batch = size
        return size

    def _forward(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The model on (B, H, W, 3) uint8 frames: uploaded as uint8 (a quarter of the bytes of float), from
        page-locked memory on a GPU (a faster copy that does not stall the host), normalised on the device.
        Frames already made on the device (``workers.device_frames``) are used where they are."""
        if isinstance(images, torch.Tensor):
            frames = images.to(self.device)
        else:
            frames = torch.from_numpy(np.ascontiguousarray(images))
            if self.device.type == "cuda":
                frames = frames.pin_memory()
            frames = frames.to(self.device, non_blocking=True)
        return _decoded_output(self.model(self._normalised(frames)))

    def _normalised(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 → (B, 3, H, W) ``(pixel - mean) / std`` in float32, then the model's type, in the
        layout its runtime reads. Written in place into memory kept from the previous batch: a fresh float tensor
        per step (convert, subtract, divide, change layout) is mostly page faults, a cost a CPU feels beside the
        forward pass."""
        batch, height, width, _ = frames.shape
        if self._inputs is None or self._inputs.shape[0] < batch or self._inputs.shape[2:] != (height, width):
            self._inputs = None  # the old memory goes before the new is taken
            self._inputs = torch.empty((batch, 3, height, width), dtype=torch.float32, device=self.device).contiguous(
                memory_format=self._layout
            )
        inputs = self._inputs[:batch]
        inputs.copy_(frames.permute(0, 3, 1, 2))
        inputs.sub_(self._mean).div_(self._std)
        return inputs if self.dtype == torch.float32 else inputs.to(self.dtype)


def trace_fused(model_name: str, weights: Weights, spec: LetterboxSpec, precision: Precision = "fp32") -> bytes:
    """The fused model traced to TorchScript (on the CPU), once, where super-gradients is already imported.

    The trace holds the same operations as the eager fused model (tested equal); it is traced at batch 2 and
    runs at any batch size, on the fixed canvas of ``spec``. It is traced in ``precision``, so the constants
    it records (anchor grids) have the model's type too.
    """
    _quiet_torchscript()
    dtype = DTYPES[precision]
    model = _build_fused_model(model_name, weights, spec.canvas)
    model = model.to(dtype=dtype, memory_format=torch.channels_last)  # type: ignore[call-overload]  # as in __init__
    example = torch.zeros(2, 3, *spec.canvas, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        traced = torch.jit.trace(model, example, strict=False, check_trace=False)
    sink = io.BytesIO()
    torch.jit.save(traced, sink)
    return sink.getvalue()


def load_torchscript(data: bytes, device: str) -> torch.nn.Module:
    """The model ``trace_fused`` produced, on ``device``."""
    _quiet_torchscript()
    return torch.jit.load(io.BytesIO(data), map_location=device)


def _quiet_torchscript() -> None:
    """Hide the tracer's and TorchScript's deprecation warnings (the trace is checked equal to the eager model).

    Process-wide filters, not catch_warnings(): the job traces in a background thread while Ray starts, and
    catch_warnings() would restore (and so drop) filters the main thread sets meanwhile."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)


def _build_fused_model(model_name: str, weights: Weights, canvas: tuple[int, int]) -> torch.nn.Module:
    """Build the architecture, load the weights strictly, and fuse RepVGG branches for inference."""
    models = super_gradients_models()
    model = models.get(model_name, num_classes=weights.num_classes)
    result = model.load_state_dict(weights.state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        example = (result.missing_keys or result.unexpected_keys)[0]
        raise WeightsError(
            f"{weights.source} does not fit {model_name} with {weights.num_classes} classes: "
            f"{len(result.missing_keys)} missing and {len(result.unexpected_keys)} unexpected keys (e.g. {example})"
        )
    model.eval()
    model.prep_model_for_conversion(input_size=canvas)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _decoded_output(output: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """YOLO-NAS in eval mode returns ((boxes [B, A, 4], scores [B, A, C]), raw head outputs)."""
    decoded = output[0] if isinstance(output, tuple) and not torch.is_tensor(output[0]) else output
    boxes, scores = decoded[0], decoded[1]
    return boxes, scores


def _postprocess(boxes: torch.Tensor, scores: torch.Tensor, batch: FrameBatch, t: Thresholds) -> Detections:
    """super-gradients' PPYoloE post-processing (multi-label, per-class NMS), for the whole batch at once."""
    num_frames, _, num_classes = scores.shape
    frame, anchor, cls = (scores > t.conf).nonzero(as_tuple=True)
    conf = scores[frame, anchor, cls]
    # Keep each frame's nms_top_k best candidates: sort by (frame, -score), then rank within the frame.
    order = torch.argsort(frame.double() * 2.0 - conf.double())
    frame, anchor, cls, conf = frame[order], anchor[order], cls[order], conf[order]
    keep = _rank_within(frame, num_frames) < t.nms_top_k
    frame, anchor, cls, conf = frame[keep], anchor[keep], cls[keep], conf[keep]
    candidate_boxes = boxes[frame, anchor]
    kept = batched_nms(candidate_boxes, conf, frame * num_classes + cls, t.iou)
    # batched_nms returns best score first; regroup by frame (stable) and cap each frame at max_det.
    kept = kept[torch.sort(frame[kept], stable=True).indices]
    kept = kept[_rank_within(frame[kept], num_frames) < t.max_det]
    frame, cls, conf, xyxy = frame[kept], cls[kept], conf[kept], candidate_boxes[kept]
    geometry = {
        name: torch.as_tensor(np.asarray(value, dtype=np.float32), device=xyxy.device)[frame]
        for name, value in (
            ("scale", batch.scales),
            ("top", batch.pad_tops),
            ("left", batch.pad_lefts),
            ("h", batch.heights),
            ("w", batch.widths),
        )
    }
    x = ((xyxy[:, [0, 2]] - geometry["left"][:, None]) / geometry["scale"][:, None]).clamp(min=0)
    y = ((xyxy[:, [1, 3]] - geometry["top"][:, None]) / geometry["scale"][:, None]).clamp(min=0)
    x = torch.minimum(x, geometry["w"][:, None])
    y = torch.minimum(y, geometry["h"][:, None])
    out_boxes = torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)
    counts = torch.bincount(frame, minlength=num_frames)
    return Detections(
        frame=frame.cpu().numpy().astype(np.int64),
        boxes=out_boxes.cpu().numpy().astype(np.float32),
        scores=conf.cpu().numpy().astype(np.float32),
        class_ids=cls.cpu().numpy().astype(np.int32),
        counts=counts.cpu().numpy().astype(np.int32),
    )


def _rank_within(groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Position of each element within its run of equal values in a sorted ``groups`` tensor."""
    counts = torch.bincount(groups, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(groups.numel(), device=groups.device) - starts[groups]
