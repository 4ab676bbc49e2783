"""Storage against a real S3 API (moto's server) and a proxy that fails requests on purpose."""

import http.client
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from common.retries import Deadline, is_transient
from common.storage import INPUT_BLOCK_SIZE, S3_CONFIG, location, single_try, with_default_options
from tests.support.fake_clock import FakeClock
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, FlakyProxy, s3_client, s3_storage_options

# a secret no message could contain by chance: it must not appear in any error or repr
SECRET_OPTIONS = {"secret": "wJalrXUtnFEMI-K7MDENG-bPxRfiCY"}


def _objects(bucket: str, count: int) -> dict[str, bytes]:
    return {f"s3://{bucket}/photos/img {i:02d} ü.jpg": bytes([i]) * (1000 + 37 * i) for i in range(count)}


def _put(endpoint: str, objects: dict[str, bytes]) -> None:
    client = s3_client(endpoint)
    for uri, data in objects.items():
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        client.put_object(Bucket=bucket, Key=key, Body=data)


def test_reads_through_a_flaky_store_lose_nothing(flaky_proxy: FlakyProxy, s3_bucket: str, s3_endpoint: str):
    objects = _objects(s3_bucket, 8)
    _put(s3_endpoint, objects)
    options = s3_storage_options(flaky_proxy.url)
    flaky_proxy.fail_every, flaky_proxy.drop_every = 4, 7
    assert {uri: location(uri, options).read_bytes() for uri in objects} == objects
    assert flaky_proxy.slowdowns > 0 and flaky_proxy.drops > 0  # the store really failed, and nothing was lost


def test_application_retry_recovers_when_the_client_gives_up(flaky_proxy: FlakyProxy, s3_bucket: str, s3_endpoint: str):
    objects = _objects(s3_bucket, 4)
    _put(s3_endpoint, objects)
    # botocore and s3fs each try once, so every recovery below is retrying()'s
    options = {
        **s3_storage_options(flaky_proxy.url),
        "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 0}},
        "skip_instance_cache": True,
    }
    flaky_proxy.fail_every = 2  # every other request: one GET in two fails, the next succeeds
    for uri, data in objects.items():
        loc = location(uri, options)
        loc.fs.retries = 1
        assert loc.read_bytes() == data
    assert flaky_proxy.slowdowns >= len(objects) - 1


def test_a_missing_object_fails_at_once(flaky_proxy: FlakyProxy, s3_bucket: str):
    options = {**s3_storage_options(flaky_proxy.url), **SECRET_OPTIONS, "skip_instance_cache": True}
    loc = location(f"s3://{s3_bucket}/nope.jpg", options)
    with pytest.raises(FileNotFoundError) as caught:
        loc.read_bytes()
    asked = [path for _, path in flaky_proxy.log if "nope.jpg" in path]
    assert len(asked) == 1, asked  # a 404 is an answer, not a fault: never retried
    assert SECRET_OPTIONS["secret"] not in f"{caught.value!r} {caught.value} {loc!r}"


def test_atomic_write_is_read_back_by_an_independent_client(s3_bucket: str, s3_endpoint: str):
    data = bytes(range(256)) * 1000
    location(f"s3://{s3_bucket}/out/part 0 ü.parquet", s3_storage_options(s3_endpoint)).write_bytes_atomic(data)
    arrow_s3 = pafs.S3FileSystem(
        endpoint_override=s3_endpoint.removeprefix("http://"),
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        scheme="http",
        region="us-east-1",
    )
    with arrow_s3.open_input_stream(f"{s3_bucket}/out/part 0 ü.parquet") as stream:
        assert stream.read() == data


def test_the_standard_aws_environment_is_enough(s3_environment: dict[str, str], s3_bucket: str):
    # AWS_ENDPOINT_URL and credentials from the environment, no storage options: how users run the job
    loc = location(f"s3://{s3_bucket}/env/x.bin")
    loc.write_bytes_atomic(b"from the environment")
    assert loc.read_bytes() == b"from the environment"
    assert loc.fs.endpoint_url is None  # found by botocore, not passed in


def test_streamed_input_is_seekable_and_ranged(flaky_proxy: FlakyProxy, s3_bucket: str, s3_endpoint: str):
    data = bytes(range(256)) * (INPUT_BLOCK_SIZE // 256 + 4096)  # a little more than one block
    _put(s3_endpoint, {f"s3://{s3_bucket}/v.mp4": data})
    with location(f"s3://{s3_bucket}/v.mp4", s3_storage_options(flaky_proxy.url)).open_input() as stream:
        stream.seek(len(data) - 100)
        assert stream.read() == data[-100:]
        stream.seek(10)
        before = flaky_proxy.requests
        assert stream.read(50) == data[10:60]
        assert stream.tell() == 60
    assert flaky_proxy.requests > before  # fetched by range, not held whole from the first read


def test_local_reads_and_writes(tmp_path: Path):
    loc = location(str(tmp_path / "a" / "b.bin"))
    loc.write_bytes_atomic(b"abc")
    assert loc.read_bytes() == b"abc" and loc.uri == f"file://{tmp_path}/a/b.bin"
    with loc.open_input() as stream:
        stream.seek(1)
        assert stream.read() == b"bc"
    assert list((tmp_path / "a").iterdir()) == [tmp_path / "a" / "b.bin"]  # no temporary file left
    with pytest.raises(FileNotFoundError):
        location(str(tmp_path / "missing")).read_bytes()


def test_a_write_under_a_deadline_makes_one_request_per_try_and_ends_by_it(flaky_proxy: FlakyProxy, s3_bucket: str):
    """The one retry layer of a write the lease guards: neither botocore nor s3fs tries a request again, and
    ``retrying_until`` starts no try that could end past the deadline (its waits on a fake clock)."""
    loc = location(
        f"s3://{s3_bucket}/out/_runs/r/shards/s-e1.json", {**s3_storage_options(flaky_proxy.url), **SECRET_OPTIONS}
    )
    clock = FakeClock()
    start = clock.monotonic()
    deadline = Deadline(3.0, clock)  # tries of 1 s at most
    flaky_proxy.fail_every = 1  # every request answered 503 SlowDown, which botocore and s3fs would both retry
    with pytest.raises(OSError) as caught:
        loc.write_bytes_atomic(b"{}", deadline=deadline)
    assert is_transient(caught.value), repr(caught.value)
    tries = len(clock.slept) + 1
    assert tries > 1 and flaky_proxy.requests == tries  # one HTTP request per try, every try
    assert clock.monotonic() - start <= deadline.seconds - deadline.try_s  # the last try began with a whole one left
    assert SECRET_OPTIONS["secret"] not in f"{caught.value!r} {caught.value}"

    flaky_proxy.fail_every = 0
    loc.write_bytes_atomic(b"{}", deadline=Deadline(30.0, clock))
    assert flaky_proxy.requests == tries + 1 and loc.read_bytes() == b"{}"
    writer = single_try(loc.fs, deadline)
    assert (writer.retries, loc.fs.retries) == (1, 5), "the output's own filesystem, which reads use, still retries"
    assert writer is single_try(loc.fs, deadline)  # one per options, from fsspec's cache


def test_s3_retry_defaults_sit_under_user_options():
    assert with_default_options("/local/path", {"x": 1}) == {"x": 1}
    assert with_default_options("s3://b/k", {})["config_kwargs"] == S3_CONFIG
    merged = with_default_options("s3://b/k", {"key": "k", "config_kwargs": {"connect_timeout": 3}})
    assert merged == {"key": "k", "config_kwargs": {**S3_CONFIG, "connect_timeout": 3}}
    mine = {"retries": {"mode": "adaptive", "max_attempts": 2}}
    assert with_default_options("s3a://b/k", {"config_kwargs": mine})["config_kwargs"] == mine


def test_the_proxy_relays_every_kind_of_request(flaky_proxy: FlakyProxy, s3_bucket: str):
    client = s3_client(flaky_proxy.url)
    part = b"p" * (5 * 2**20)  # multipart: POST, PUTs with Expect: 100-continue, POST to complete
    upload_id = client.create_multipart_upload(Bucket=s3_bucket, Key="mp")["UploadId"]
    parts = []
    for number in (1, 2):
        sent = client.upload_part(Bucket=s3_bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=part)
        parts.append({"PartNumber": number, "ETag": sent["ETag"]})
    client.complete_multipart_upload(Bucket=s3_bucket, Key="mp", UploadId=upload_id, MultipartUpload={"Parts": parts})
    assert client.head_object(Bucket=s3_bucket, Key="mp")["ContentLength"] == 2 * len(part)
    assert client.get_object(Bucket=s3_bucket, Key="mp", Range="bytes=3-5")["Body"].read() == b"ppp"
    raw = http.client.HTTPConnection(*flaky_proxy.url.removeprefix("http://").split(":"))
    raw.request("PUT", f"/{s3_bucket}/chunked", body=iter([b"ab", b"cde"]), encode_chunked=True)
    assert raw.getresponse().status == 200
    assert client.get_object(Bucket=s3_bucket, Key="chunked")["Body"].read() == b"abcde"
    client.delete_object(Bucket=s3_bucket, Key="chunked")
    with pytest.raises(client.exceptions.NoSuchKey):
        client.get_object(Bucket=s3_bucket, Key="chunked")
    assert {method for method, _ in flaky_proxy.log} == {"POST", "PUT", "HEAD", "GET", "DELETE"}
