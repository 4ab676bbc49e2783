"""Weights from anywhere a path goes: S3 (a real S3 API) and HTTP(S), checked on the driver before any work."""

from __future__ import annotations

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import safetensors.torch
import torch

from common.errors import UsageError
from jobs.planning.model_setup import prepare_model
from schemas.config import JobConfig
from tests.support.s3 import s3_client, s3_storage_options
from workers.weights import YOLONAS_LICENSE, coco_mirror_cache_path


def _config(weights: str, **options) -> JobConfig:
    return JobConfig(sources=["unused"], output="unused", weights=weights, **options)


def test_weights_from_s3(s3_endpoint, s3_bucket, probe_weights):
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="w/probe.pth", Body=probe_weights.read_bytes())
    setup = prepare_model(_config(f"s3://{s3_bucket}/w/probe.pth", storage_options=s3_storage_options(s3_endpoint)))
    assert setup.weights.sha256 == hashlib.sha256(probe_weights.read_bytes()).hexdigest()
    assert setup.weights.num_classes == 80 and setup.class_names[0] == "person"


def test_weights_over_http(tmp_path: Path, probe_weights):
    (tmp_path / "probe.pth").write_bytes(probe_weights.read_bytes())
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/probe.pth"
        assert prepare_model(_config(url)).weights.sha256 == hashlib.sha256(probe_weights.read_bytes()).hexdigest()
        with pytest.raises(UsageError, match="not found"):
            prepare_model(_config(url.replace("probe", "missing")))
    finally:
        server.shutdown()
        server.server_close()


def test_missing_s3_weights_are_a_usage_error(s3_endpoint, s3_bucket):
    with pytest.raises(UsageError, match="not found") as error:
        prepare_model(_config(f"s3://{s3_bucket}/nope.pth", storage_options=s3_storage_options(s3_endpoint)))
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def probe_safetensors_bytes(probe_weights: Path) -> bytes:
    """The probe checkpoint's state dict as a safetensors file: the Hugging Face mirror's layout."""
    return safetensors.torch.save(torch.load(probe_weights, weights_only=True)["net"])


def test_safetensors_weights_from_s3(s3_endpoint, s3_bucket, probe_safetensors_bytes):
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key="w/probe.safetensors", Body=probe_safetensors_bytes)
    setup = prepare_model(
        _config(f"s3://{s3_bucket}/w/probe.safetensors", storage_options=s3_storage_options(s3_endpoint))
    )
    assert setup.weights.checkpoint_key == "safetensors"
    assert setup.weights.sha256 == hashlib.sha256(probe_safetensors_bytes).hexdigest()
    assert setup.weights.num_classes == 80 and setup.class_names[0] == "person"
    assert setup.weights.license is None


def test_coco_from_the_cached_mirror_file_carries_the_licence(tmp_path: Path, monkeypatch, probe_safetensors_bytes):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = coco_mirror_cache_path("yolo_nas_s")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(probe_safetensors_bytes)
    setup = prepare_model(_config("coco"))
    assert setup.weights.license == YOLONAS_LICENSE and setup.weights.source == "coco"
    assert setup.class_names[0] == "person"


def test_hf_weights_offline_are_a_one_line_usage_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import, maybe done already
    uri = "hf://CondadosAI/detectors/yolo-nas-s.safetensors"
    with pytest.raises(UsageError, match=f"cannot read weights {uri}: OfflineModeIsEnabled") as error:
        prepare_model(_config(uri))
    assert "\n" not in str(error.value)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """Silent: a test's output is its assertions."""
