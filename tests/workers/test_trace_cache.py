"""workers/trace_cache.py: a stored trace is reused for the same inputs only, and a damaged one is replaced."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from workers import trace_cache
from workers.letterbox import LetterboxSpec
from workers.weights import Weights


def _script(module: torch.nn.Module) -> bytes:
    sink = io.BytesIO()
    torch.jit.save(torch.jit.script(module), sink)
    return sink.getvalue()


@pytest.fixture
def traces(monkeypatch) -> list[str]:
    """Stand in for the real trace (tested in test_detector.py) with a small TorchScript module per call."""
    calls: list[str] = []

    def fake_trace(model_name: str, weights: Weights, spec: LetterboxSpec, precision: str) -> bytes:
        calls.append(weights.sha256)
        return _script(torch.nn.Identity() if len(calls) % 2 else torch.nn.ReLU())

    monkeypatch.setattr(trace_cache, "trace_fused", fake_trace)
    return calls


def _weights(sha: str) -> Weights:
    return Weights(state_dict={}, sha256=sha, source="test")


def test_same_inputs_are_traced_once(tmp_path: Path, traces):
    first = trace_cache.traced_model("yolo_nas_s", _weights("a" * 64), LetterboxSpec(), cache_dir=tmp_path)
    again = trace_cache.traced_model("yolo_nas_s", _weights("a" * 64), LetterboxSpec(), cache_dir=tmp_path)
    assert again == first and traces == ["a" * 64]
    assert [p.name.startswith(".partial") for p in (tmp_path / "traced").iterdir()] == [False]


def test_other_weights_model_or_precision_get_their_own_entry(tmp_path: Path, traces):
    trace_cache.traced_model("yolo_nas_s", _weights("a" * 64), LetterboxSpec(), cache_dir=tmp_path)
    trace_cache.traced_model("yolo_nas_s", _weights("b" * 64), LetterboxSpec(), cache_dir=tmp_path)
    trace_cache.traced_model("yolo_nas_m", _weights("b" * 64), LetterboxSpec(), cache_dir=tmp_path)
    trace_cache.traced_model("yolo_nas_m", _weights("b" * 64), LetterboxSpec(), "bf16", cache_dir=tmp_path)
    assert len(traces) == 4 and len(list((tmp_path / "traced").iterdir())) == 4


def test_onnx_entries_are_kept_apart_from_torchscript(tmp_path: Path, monkeypatch):
    """An ONNX Runtime entry is exported, not traced, stored under its own name, and reused."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    exports: list[str] = []
    monkeypatch.setattr(
        trace_cache, "export_onnx", lambda name, w, spec: exports.append(name) or model.SerializeToString()
    )
    monkeypatch.setattr(trace_cache, "trace_fused", lambda *args: pytest.fail("traced instead of exported"))
    for _ in range(2):
        data = trace_cache.traced_model(
            "yolo_nas_s", _weights("a" * 64), LetterboxSpec(), runtime="onnxruntime", cache_dir=tmp_path
        )
    assert exports == ["yolo_nas_s"] and onnx.load_from_string(data).graph.node[0].op_type == "Identity"
    assert [p.suffix for p in (tmp_path / "traced").iterdir()] == [".onnx"]


def test_a_damaged_entry_is_traced_again(tmp_path: Path, traces):
    first = trace_cache.traced_model("yolo_nas_s", _weights("a" * 64), LetterboxSpec(), cache_dir=tmp_path)
    (entry,) = (tmp_path / "traced").iterdir()
    entry.write_bytes(first[: len(first) // 2])
    second = trace_cache.traced_model("yolo_nas_s", _weights("a" * 64), LetterboxSpec(), cache_dir=tmp_path)
    assert len(traces) == 2 and entry.read_bytes() == second
    torch.jit.load(io.BytesIO(second))
