import io
from pathlib import Path

import pytest
import torch

from workers.weights import (
    WeightsError,
    coco_cache_path,
    fetch_coco_weights,
    load_weights,
    read_class_names,
    read_weights,
)


def _bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


STATE = {"heads.head1.cls_pred.weight": torch.zeros(3, 8, 1, 1), "heads.head1.cls_pred.bias": torch.ones(3)}


def test_ema_net_is_preferred_over_net_and_processing_params_kept():
    ema = {k: v + 1 for k, v in STATE.items()}
    params = {"class_names": ["a", "b", "c"], "conf": 0.3}
    weights = read_weights(_bytes({"net": STATE, "ema_net": ema, "processing_params": params}), "ckpt")
    assert weights.checkpoint_key == "ema_net"
    assert torch.equal(weights.state_dict["heads.head1.cls_pred.bias"], torch.full((3,), 2.0))
    assert weights.class_names == ("a", "b", "c")
    assert weights.num_classes == 3


def test_bare_state_dict_and_module_prefix():
    weights = read_weights(_bytes({f"module.{k}": v for k, v in STATE.items()}), "bare")
    assert weights.checkpoint_key == "state_dict"
    assert set(weights.state_dict) == set(STATE)
    assert weights.processing_params is None


def test_sha256_identifies_the_bytes():
    data = _bytes({"net": STATE})
    assert read_weights(data, "x").sha256 == read_weights(data, "y").sha256
    assert read_weights(data, "x").sha256 != read_weights(_bytes(STATE), "x").sha256


class Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_pickled_code_is_refused_unless_trusted():
    data = _bytes({"net": STATE, "extra": Payload()})
    with pytest.raises(WeightsError, match="--trust-checkpoint"):
        read_weights(data, "evil.pth")
    assert read_weights(data, "evil.pth", trust_checkpoint=True).num_classes == 3


def test_garbage_and_missing_files_are_weights_errors(tmp_path: Path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load weights"):
        load_weights(str(garbage), "yolo_nas_s")
    with pytest.raises(WeightsError, match="not found"):
        load_weights(str(tmp_path / "missing.pth"), "yolo_nas_s")


def test_coco_without_cache_or_network_says_where_to_put_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr("workers.weights.COCO_URL", "http://127.0.0.1:9/{model}_coco.pth")  # nothing listens there
    expected = tmp_path / "hub" / "checkpoints" / "yolo_nas_m_coco.pth"
    assert coco_cache_path("yolo_nas_m") == expected
    with pytest.raises(WeightsError, match=f"put yolo_nas_m_coco.pth at {expected}"):
        fetch_coco_weights("yolo_nas_m", timeout_s=5)


def test_coco_uses_torch_hub_cache_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = coco_cache_path("yolo_nas_s")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(_bytes({"net": STATE}))
    weights = load_weights("coco", "yolo_nas_s")
    assert weights.source == "coco" and weights.num_classes == 3


def test_class_names_files():
    assert read_class_names("cat\ndog\n\n", "f.txt") == ("cat", "dog")
    assert read_class_names('["cat", "dog"]', "f.json") == ("cat", "dog")
    with pytest.raises(WeightsError):
        read_class_names("[1, 2]", "f.json")
