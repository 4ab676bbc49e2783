"""Weights from anywhere a path goes: S3 (a real S3 API) and HTTP(S), checked on the driver before any work."""

from __future__ import annotations

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jobs.errors import UsageError
from jobs.model_setup import prepare_model
from schemas.config import JobConfig
from tests.support.s3 import s3_client, s3_storage_options


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


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:
        """Silent: a test's output is its assertions."""
