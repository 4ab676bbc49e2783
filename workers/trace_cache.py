"""The fused, traced model (TorchScript or ONNX) kept on disk between runs, so a scheduled job does not rebuild
it every time.

Tracing costs seconds of CPU on the driver (importing super-gradients, building, fusing, tracing); a cron job
over a growing bucket would pay it every run for the same weights. The cache key covers everything the trace
depends on (model, weights sha256, canvas, precision, runtime, torch version), files are published atomically,
and a file that does not load is traced again, so a stale or damaged entry can only cost time.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from schemas.choices import Precision, Runtime
from workers.detector import load_torchscript, trace_fused
from workers.files import write_atomic
from workers.letterbox import LetterboxSpec
from workers.onnx_runtime import OnnxForward, export_onnx
from workers.weights import Weights

FORMAT = 1
"""Bumped whenever ``trace_fused`` changes what it produces."""


def default_cache_dir() -> Path:
    """``$YOLONAS_BATCH_CACHE``, else ``$XDG_CACHE_HOME/yolonas-batch``, else ``~/.cache/yolonas-batch``."""
    if os.environ.get("YOLONAS_BATCH_CACHE"):
        return Path(os.environ["YOLONAS_BATCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yolonas-batch"


def traced_model(
    model_name: str,
    weights: Weights,
    spec: LetterboxSpec,
    precision: Precision = "fp32",
    runtime: Runtime = "torch",
    cache_dir: Path | None = None,
) -> bytes:
    """``trace_fused``'s bytes (``export_onnx``'s for ONNX Runtime), from the cache when an entry for these
    inputs loads, else made and stored."""
    key = hashlib.sha256(
        f"{FORMAT}|{model_name}|{weights.sha256}|{spec.canvas}|{precision}|{runtime}|{torch.__version__}".encode()
    ).hexdigest()[:32]
    suffix = ".onnx" if runtime == "onnxruntime" else ".pt"
    path = (cache_dir or default_cache_dir()) / "traced" / f"{model_name}-{key}{suffix}"
    if path.is_file():
        data = path.read_bytes()
        if _loads(data, runtime):
            return data
    data = (
        export_onnx(model_name, weights, spec)
        if runtime == "onnxruntime"
        else trace_fused(model_name, weights, spec, precision)
    )
    try:
        write_atomic(path, data)
    except OSError:  # a read-only or full cache costs the next run a trace, never this one its result
        pass
    return data


def _loads(data: bytes, runtime: Runtime) -> bool:
    try:
        OnnxForward(data, threads=1) if runtime == "onnxruntime" else load_torchscript(data, "cpu")
    except Exception:
        return False
    return True
