"""The catalog properties with which pyiceberg's FileIO reaches an output on S3 as the job itself does.

The tables' data files are the job's part files where they are (``s3://…``), and the warehouse is ``OUT/_iceberg``
by default, so pyiceberg must read and write the same store as the job: the same endpoint, region and credentials.
It is given pyiceberg's ``FsspecFileIO``, which is s3fs and botocore like ``common.storage``, so whatever the job's
storage options leave unsaid resolves the same way: ``AWS_ENDPOINT_URL``, ``AWS_DEFAULT_REGION``, the credentials
chain (variables, profiles, instance roles), a bucket's own region. What the options do say (``endpoint_url``,
``key``, ``secret``, ``token``, ``client_kwargs``' ``region_name``, ``profile``, ``anon``) becomes pyiceberg's own
``s3.*`` properties. These are catalog properties, held in memory by the catalog object: never written to the
tables' metadata, never logged, never saved with the run.
"""

from __future__ import annotations

from typing import Any

import fsspec
from pyiceberg.io import (
    PY_IO_IMPL,
    S3_ACCESS_KEY_ID,
    S3_ANONYMOUS,
    S3_ENDPOINT,
    S3_PROFILE_NAME,
    S3_REGION,
    S3_SECRET_ACCESS_KEY,
    S3_SESSION_TOKEN,
)

from common.storage import S3_PROTOCOLS

FSSPEC_FILE_IO = "pyiceberg.io.fsspec.FsspecFileIO"


def file_io_properties(storage_options: dict[str, Any], *uris: str) -> dict[str, str]:
    """pyiceberg's FileIO properties for the job's ``storage_options`` when any of ``uris`` (the output, the
    warehouse) is on S3; none otherwise, leaving pyiceberg its defaults."""
    if not any(fsspec.core.split_protocol(uri)[0] in S3_PROTOCOLS for uri in uris):
        return {}
    client = storage_options.get("client_kwargs") or {}
    properties = {
        PY_IO_IMPL: FSSPEC_FILE_IO,
        S3_ENDPOINT: storage_options.get("endpoint_url") or client.get("endpoint_url"),
        S3_REGION: client.get("region_name"),
        S3_ACCESS_KEY_ID: storage_options.get("key") or client.get("aws_access_key_id"),
        S3_SECRET_ACCESS_KEY: storage_options.get("secret") or client.get("aws_secret_access_key"),
        S3_SESSION_TOKEN: storage_options.get("token") or client.get("aws_session_token"),
        S3_PROFILE_NAME: storage_options.get("profile"),
        S3_ANONYMOUS: "true" if storage_options.get("anon") else None,
    }
    return {name: str(value) for name, value in properties.items() if value}
