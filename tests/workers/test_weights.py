import hashlib
import io
import json
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch

from workers.weights import (
    YOLONAS_LICENSE,
    WeightsError,
    cached_coco_weights,
    coco_cache_path,
    coco_mirror_cache_path,
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


@pytest.fixture
def hf_offline(monkeypatch):
    """No request reaches the Hugging Face hub: huggingface_hub refuses each at once, as under HF_HUB_OFFLINE=1."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import, maybe done already


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch) -> Path:
    """An empty torch hub cache; returns its checkpoints folder (not created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


def test_coco_without_cache_or_network_says_what_was_tried_and_where_to_put_the_file(torch_home: Path, hf_offline):
    assert coco_cache_path("yolo_nas_m") == torch_home / "yolo_nas_m_coco.pth"
    assert coco_mirror_cache_path("yolo_nas_m") == torch_home / "yolo_nas_m_coco.safetensors"
    started = time.monotonic()
    with pytest.raises(WeightsError) as error:
        load_weights("coco", "yolo_nas_m")
    message = str(error.value)
    assert time.monotonic() - started < 10, "an offline hub must fail at once"
    assert "\n" not in message
    assert "hf://CondadosAI/detectors/yolo-nas-m.safetensors" in message and "offline" in message
    url = "https://huggingface.co/CondadosAI/detectors/resolve/main/yolo-nas-m.safetensors"
    assert f"download {url} to {torch_home / 'yolo_nas_m_coco.safetensors'}" in message
    assert f"yolo_nas_m_coco.pth at {torch_home / 'yolo_nas_m_coco.pth'}" in message
    assert not torch_home.exists() or not any(torch_home.iterdir()), "a failed download leaves nothing behind"


def test_coco_uses_torch_hub_cache_file_and_states_the_licence(torch_home: Path):
    torch_home.mkdir(parents=True)
    coco_cache_path("yolo_nas_s").write_bytes(_bytes({"net": STATE}))
    (torch_home / "yolo_nas_s_coco.safetensors").write_bytes(safetensors.torch.save({"unused": torch.zeros(1)}))
    weights = load_weights("coco", "yolo_nas_s")
    assert weights.source == "coco" and weights.num_classes == 3 and weights.checkpoint_key == "net"
    assert weights.license == YOLONAS_LICENSE and "LICENSE.YOLONAS.md" in YOLONAS_LICENSE
    assert cached_coco_weights("yolo_nas_s") == coco_cache_path("yolo_nas_s"), "super-gradients' own file first"


def test_coco_uses_the_mirror_file_in_torch_hub_cache(torch_home: Path, hf_offline):
    torch_home.mkdir(parents=True)
    data = safetensors.torch.save(STATE)
    (torch_home / "yolo_nas_l_coco.safetensors").write_bytes(data)
    weights = load_weights("coco", "yolo_nas_l")
    assert cached_coco_weights("yolo_nas_l") == torch_home / "yolo_nas_l_coco.safetensors"
    assert weights.checkpoint_key == "safetensors" and weights.sha256 == hashlib.sha256(data).hexdigest()
    assert weights.license == YOLONAS_LICENSE and weights.num_classes == 3


def test_coco_downloads_from_the_mirror_once_and_caches_it(torch_home: Path, monkeypatch):
    data = safetensors.torch.save(STATE)
    asked = []
    monkeypatch.setattr("workers.weights._read_with_fsspec", lambda uri: asked.append(uri) or data)
    first = load_weights("coco", "yolo_nas_s")
    second = load_weights("coco", "yolo_nas_s")
    assert asked == ["hf://CondadosAI/detectors/yolo-nas-s.safetensors"]
    assert (torch_home / "yolo_nas_s_coco.safetensors").read_bytes() == data
    assert [p.name for p in torch_home.iterdir()] == ["yolo_nas_s_coco.safetensors"], "no partial file left"
    assert first.sha256 == second.sha256 == hashlib.sha256(data).hexdigest()
    assert first.license == second.license == YOLONAS_LICENSE


def test_a_broken_mirror_download_is_not_cached(torch_home: Path, monkeypatch):
    monkeypatch.setattr("workers.weights._read_with_fsspec", lambda uri: b"<html>rate limited</html>")
    with pytest.raises(WeightsError, match="cannot load weights"):
        load_weights("coco", "yolo_nas_s")
    assert cached_coco_weights("yolo_nas_s") is None


def test_hf_uri_offline_is_one_clear_line(hf_offline):
    uri = "hf://CondadosAI/detectors/yolo-nas-s.safetensors"
    with pytest.raises(WeightsError, match=f"cannot read weights {uri}: OfflineModeIsEnabled") as error:
        load_weights(uri, "yolo_nas_s")
    assert "\n" not in str(error.value)
    with pytest.raises(WeightsError, match="cannot read weights hf://just-a-name"):
        load_weights("hf://just-a-name", "yolo_nas_s")


def test_a_missing_hf_file_says_so_and_mentions_the_token():
    def missing(uri: str) -> bytes:
        raise FileNotFoundError(uri)  # what HfFileSystem raises for a missing repository, revision or file

    with pytest.raises(WeightsError, match="weights file not found: hf://org/repo/w.safetensors .*HF_TOKEN"):
        load_weights("hf://org/repo/w.safetensors", "yolo_nas_s", read_bytes=missing)


def test_the_mirror_by_uri_carries_the_licence_and_other_repos_do_not():
    data = safetensors.torch.save(STATE)
    for uri in ("hf://CondadosAI/detectors/yolo-nas-s.safetensors", "hf://condadosai/detectors@main/x.safetensors"):
        assert load_weights(uri, "yolo_nas_s", read_bytes=lambda _: data).license == YOLONAS_LICENSE
    for uri in ("hf://someone/else/yolo-nas-s.safetensors", "hf://datasets/CondadosAI/detectors/x.safetensors"):
        assert load_weights(uri, "yolo_nas_s", read_bytes=lambda _: data).license is None


@pytest.fixture(scope="module")
def probe_safetensors(coco_probe_weights: Path, tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    """The probe checkpoint's state dict as a safetensors file (the mirror's layout: super-gradients' keys, no
    wrapper), and that state dict."""
    state = torch.load(coco_probe_weights, weights_only=True)["net"]
    path = tmp_path_factory.mktemp("safetensors") / "probe.safetensors"
    safetensors.torch.save_file(state, path)
    return path, state


def test_safetensors_file_loads_the_same_tensors_as_the_checkpoint(probe_safetensors):
    path, state = probe_safetensors
    weights = load_weights(str(path), "yolo_nas_s")
    assert weights.checkpoint_key == "safetensors"
    assert weights.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights.state_dict.keys() == state.keys()
    assert all(
        torch.equal(weights.state_dict[k], v) and weights.state_dict[k].dtype == v.dtype for k, v in state.items()
    )
    assert weights.num_classes == 80 and weights.class_names is None and weights.license is None


def test_safetensors_is_recognised_by_its_header_and_never_unpickles():
    data = safetensors.torch.save({f"module.{k}": v for k, v in STATE.items()})
    weights = read_weights(data, "weights.bin", trust_checkpoint=False)
    assert weights.checkpoint_key == "safetensors" and set(weights.state_dict) == set(STATE)
    with pytest.raises(WeightsError, match="cannot load weights from w.safetensors") as error:
        read_weights(data[:-4], "w.safetensors")
    assert "\n" not in str(error.value)


def test_safetensors_metadata_may_carry_processing_params():
    params = {"class_names": ["a", "b", "c"], "iou": 0.6}
    data = safetensors.torch.save(STATE, metadata={"processing_params": json.dumps(params), "format": "pt"})
    weights = read_weights(data, "w.safetensors")
    assert weights.class_names == ("a", "b", "c") and weights.processing_params == params
    unrelated = safetensors.torch.save(STATE, metadata={"processing_params": "not json"})
    assert read_weights(unrelated, "w.safetensors").processing_params is None


def test_class_names_files():
    assert read_class_names("cat\ndog\n\n", "f.txt") == ("cat", "dog")
    assert read_class_names('["cat", "dog"]', "f.json") == ("cat", "dog")
    with pytest.raises(WeightsError):
        read_class_names("[1, 2]", "f.json")
