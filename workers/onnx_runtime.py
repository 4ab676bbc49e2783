"""The fused model on ONNX Runtime: same fp32 arithmetic as torch, faster on CPUs
(``benchmarks/onnx_runtime.py`` measures by how much).

The model is exported once, where super-gradients is already imported, with only the decoded boxes and scores
as outputs and a dynamic batch axis; a model actor then needs onnxruntime alone. NMS and the mapping of boxes
back stay in ``workers.detector`` (torch), so the two runtimes differ in the forward pass only.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from workers.detector import Detector, Thresholds, _build_fused_model, _decoded_output
from workers.letterbox import LetterboxSpec
from workers.weights import Weights


class _Decoded(torch.nn.Module):
    """The fused model with only its decoded (boxes, scores) outputs, the two the job's NMS needs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _decoded_output(self.model(x))


def export_onnx(model_name: str, weights: Weights, spec: LetterboxSpec) -> bytes:
    """The fused fp32 model as ONNX bytes (opset 17, input ``x`` [B, 3, H, W], outputs ``boxes``, ``scores``)."""
    model = _Decoded(_build_fused_model(model_name, weights, spec.canvas))
    sink = io.BytesIO()
    # The TorchScript-based exporter: the torch.export-based one (the default since torch 2.9) needs onnxscript
    # and has not been checked against this model. Its deprecation warning is expected.
    warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
    warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, *spec.canvas),),
            sink,  # type: ignore[arg-type]  # a file object works; the stubs name paths only
            input_names=["x"],
            output_names=["boxes", "scores"],
            dynamic_axes={"x": {0: "batch"}, "boxes": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return sink.getvalue()


class OnnxForward:
    """Callable like the torch model (a float NCHW tensor in; boxes and scores out), run by ONNX Runtime."""

    def __init__(self, data: bytes, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, scores = self.session.run(None, {"x": np.ascontiguousarray(inputs.float().contiguous().numpy())})
        return torch.from_numpy(boxes), torch.from_numpy(scores)


def onnx_detector(data: bytes, spec: LetterboxSpec, *, thresholds: Thresholds, threads: int) -> Detector:
    """A CPU ``Detector`` whose forward pass is ``export_onnx``'s model on ONNX Runtime (fp32)."""
    return Detector(OnnxForward(data, threads), spec, device="cpu", thresholds=thresholds, precision="fp32")
