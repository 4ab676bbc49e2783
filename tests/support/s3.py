"""A real S3 API for tests: moto's standalone server in this process, and a proxy in front of it that fails
requests on purpose, so retry code meets real HTTP faults rather than mocks.

Its fixtures reach every test module through ``pytest_plugins`` in ``tests/conftest.py``: one server per
session, a fresh bucket and a fresh proxy per test.
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer
from s3fs import S3FileSystem

from common.storage import SingleTryS3FileSystem

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>flaky-proxy</RequestId></Error>"
)
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "expect"}
)


def start_moto_server() -> tuple[ThreadedMotoServer, str]:
    """moto's S3 server on a free loopback port, in a thread of this process; returns it and its URL."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def s3_env(endpoint_url: str) -> dict[str, str]:
    """The standard AWS environment a client needs to reach ``endpoint_url`` (how users configure the job)."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def s3_storage_options(endpoint_url: str) -> dict[str, Any]:
    """The same, as fsspec storage options (``--storage-options``)."""
    return {"endpoint_url": endpoint_url, "key": ACCESS_KEY, "secret": SECRET_KEY}


def pyiceberg_s3_properties(endpoint_url: str) -> dict[str, str]:
    """The same, as pyiceberg's FileIO properties: how a reader of the Iceberg tables reaches the server."""
    names = {"endpoint_url": "s3.endpoint", "key": "s3.access-key-id", "secret": "s3.secret-access-key"}
    return {"s3.region": REGION, **{names[key]: value for key, value in s3_storage_options(endpoint_url).items()}}


def s3_client(endpoint_url: str) -> Any:
    """A plain boto3 client, to arrange and inspect objects independently of the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


class FlakyProxy:
    """An HTTP server that relays every request to ``target_url`` and its answer back unchanged, except:
    every ``fail_every``-th request gets ``503 SlowDown`` and every ``drop_every``-th loses its connection
    without an answer (counted over all requests; 0 turns a fault off; both may be changed at any time)."""

    def __init__(self, target_url: str, fail_every: int = 0, drop_every: int = 0) -> None:
        target = urlsplit(target_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 80)
        self.fail_every = fail_every
        self.drop_every = drop_every
        self.requests = 0
        self.log: list[tuple[str, str]] = []
        """Method and path (with query) of every request, in arrival order."""
        self.slowdowns = 0
        self.drops = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _RelayHandler)
        self._server.daemon_threads = True
        self._server.proxy = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def failures(self) -> int:
        """Requests that got a fault instead of the store's answer."""
        return self.slowdowns + self.drops

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def next_fault(self, method: str, path: str) -> str | None:
        """``"drop"``, ``"slowdown"`` or ``None`` for the request arriving now."""
        with self._lock:
            self.requests += 1
            self.log.append((method, path))
            if self.drop_every and self.requests % self.drop_every == 0:
                self.drops += 1
                return "drop"
            if self.fail_every and self.requests % self.fail_every == 0:
                self.slowdowns += 1
                return "slowdown"
            return None


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def relay(self) -> None:
        body = self._read_body()
        proxy: FlakyProxy = self.server.proxy  # type: ignore[attr-defined]
        fault = proxy.next_fault(self.command, self.path)
        if fault == "drop":
            # RST instead of an orderly close: the client sees "connection reset" mid-request
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if fault == "slowdown":
            self._answer(503, [("Content-Type", "application/xml")], SLOW_DOWN, len(SLOW_DOWN))
            return
        status, headers, payload, length = self._forward(proxy.target, body)
        self._answer(status, headers, payload, length)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = relay

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a test's output is its assertions."""

    def _read_body(self) -> bytes:
        """The request body, whether framed by ``Content-Length`` or sent ``Transfer-Encoding: chunked``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, target: tuple[str, int], body: bytes) -> tuple[int, list[tuple[str, str]], bytes, int]:
        """Send the request as received (same Host, so its signature still holds) with a plain body."""
        upstream = http.client.HTTPConnection(*target, timeout=30)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            if body or self.command in ("PUT", "POST"):
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            payload = response.read()
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
            declared = response.getheader("Content-Length")
            length = int(declared) if self.command == "HEAD" and declared else len(payload)
            return response.status, [(k, v) for k, v in headers if k.lower() != "content-length"], payload, length
        finally:
            upstream.close()

    def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes, length: int) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a moto S3 server (credentials: ``s3_env``/``s3_storage_options``)."""
    server, url = start_moto_server()
    yield url
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new, empty bucket for one test, so tests never see each other's objects."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_environment(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The AWS environment pointing at the server. s3fs reuses instances made with the same options whatever
    the environment, so cached ones are dropped before and after: none keeps another endpoint."""
    env = s3_env(s3_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _clear_instance_caches()
    yield env
    _clear_instance_caches()


def _clear_instance_caches() -> None:
    S3FileSystem.clear_instance_cache()
    SingleTryS3FileSystem.clear_instance_cache()  # a class of its own, with a cache of its own


@pytest.fixture
def flaky_proxy(s3_endpoint: str) -> Iterator[FlakyProxy]:
    """A ``FlakyProxy`` in front of the server, faults off until a test turns them on."""
    proxy = FlakyProxy(s3_endpoint)
    yield proxy
    proxy.close()
