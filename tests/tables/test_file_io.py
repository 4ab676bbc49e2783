"""``tables.file_io``: the job's storage options as pyiceberg's FileIO properties, for outputs on S3 only."""

from __future__ import annotations

from tables.file_io import FSSPEC_FILE_IO, file_io_properties


def test_what_the_options_say_becomes_pyicebergs_own_properties() -> None:
    options = {
        "key": "id",
        "secret": "shh",
        "token": "session",
        "client_kwargs": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-3"},
        "config_kwargs": {"retries": {"max_attempts": 3}},
    }
    assert file_io_properties(options, "/data/out", "s3://bucket/out/_iceberg") == {
        "py-io-impl": FSSPEC_FILE_IO,
        "s3.endpoint": "http://minio:9000",
        "s3.region": "eu-west-3",
        "s3.access-key-id": "id",
        "s3.secret-access-key": "shh",
        "s3.session-token": "session",
    }
    assert file_io_properties({"anon": True, "profile": "lab"}, "s3a://bucket/out") == {
        "py-io-impl": FSSPEC_FILE_IO,
        "s3.profile-name": "lab",
        "s3.anonymous": "true",
    }


def test_what_they_leave_unsaid_is_resolved_as_for_the_job_and_local_outputs_get_none() -> None:
    assert file_io_properties({}, "s3://bucket/out") == {"py-io-impl": FSSPEC_FILE_IO}  # botocore: variables, …
    assert file_io_properties({"key": "id"}, "/data/out", "file:///data/out/_iceberg") == {}
