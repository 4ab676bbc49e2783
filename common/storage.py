"""One storage entry point for local paths and object stores (fsspec), and URIs as the output names them.

Every read and write of the job goes through ``location()``: listing, input bytes, Parquet, manifests. Output
rows name inputs by full URI (``file://`` + absolute path, or ``s3://bucket/key``), never percent-encoded.

Object stores fail transiently (throttling, resets, timeouts), so S3 requests are retried per request by
botocore (``S3_CONFIG``, on by default for ``s3://``) and by s3fs, and each whole read, listing step or PUT
again by ``retrying()``, which also covers what those give up on. A write given a ``Deadline`` (what the output's
lease guards: commit markers, part files, epoch records, run manifests) is instead retried by one layer only,
``retrying_until``, through a sibling of its filesystem whose requests are tried once, each try cut at the
deadline's ``try_s`` (``single_try``): stacked retries could make it land minutes late. A missing object is
never retried. Nothing here puts storage options (which may hold credentials) into a message or a repr.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from typing import Any, BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem
from s3fs import S3FileSystem

from common.retries import Deadline, retrying, retrying_until
from workers.files import write_atomic

INPUT_BLOCK_SIZE = 8 * 2**20
"""Bytes per ranged read of a streamed input. One open input holds about this much (fsspec's read-ahead cache
keeps the last block) plus the largest single read its reader asks for."""

S3_PROTOCOLS = frozenset({"s3", "s3a"})
S3_CONFIG: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 8}}
"""botocore ``Config`` defaults for S3: per-request retries (``max_attempts`` counts retries, after the first
try) of throttling, 5xx and connection errors, with exponential backoff and jitter. A user's ``config_kwargs``
keys replace these one by one."""


@dataclass(frozen=True)
class Location:
    """A filesystem and a path on it (fsspec's own path form: no protocol for local files)."""

    fs: fsspec.AbstractFileSystem
    path: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def uri(self) -> str:
        return uri_of(self.fs, self.path)

    def child(self, *parts: str) -> "Location":
        return Location(self.fs, posixpath.join(self.path, *parts))

    def files(self) -> list[str]:
        """Every file under this folder, from a fresh listing (fsspec caches listings); none if it is absent."""
        self.fs.invalidate_cache(self.path)
        return self.fs.find(self.path) if self.fs.exists(self.path) else []

    def read_bytes(self) -> bytes:
        """The whole file; transient errors are retried, a missing file raises ``FileNotFoundError`` at once.

        On S3 this is one GET: s3fs would otherwise send a HEAD first to decide on parallel ranged GETs,
        which doubles the requests for the small files (images, manifests) this is used for.
        """
        options = {"max_concurrency": 1} if is_s3(self.fs) else {}
        return retrying(lambda: self.fs.cat_file(self.path, **options))

    def open_input(self) -> BinaryIO:
        """A seekable reader for streaming (video) without holding the file: ranged reads of
        ``INPUT_BLOCK_SIZE`` on an object store, so memory per open input is about one block.

        Opening is retried here; each ranged read inside is retried by botocore and s3fs per request.
        """
        return retrying(lambda: self.fs.open(self.path, "rb", block_size=INPUT_BLOCK_SIZE, cache_type="readahead"))

    def write_bytes_atomic(self, data: bytes, durable: bool = True, deadline: Deadline | None = None) -> None:
        """Publish ``data`` whole or not at all: rename on local disk, one PUT on an object store (an object
        appears only when its upload completes), retried as a whole since a PUT is idempotent. ``durable``
        False skips flushing a local file to disk first (``workers.files.write_atomic``). With a ``deadline``,
        an object store's write ends by it, landed or failed (``single_try``); a local one is the same either
        way."""
        if self.is_local:
            write_atomic(self.path, data, durable)
        elif deadline is None:
            retrying(lambda: self.fs.pipe_file(self.path, data))
        elif is_s3(self.fs):
            writer = single_try(self.fs, deadline)
            retrying_until(lambda: writer.pipe_file(self.path, data, timeout=deadline.try_s), deadline)
        else:
            retrying_until(lambda: self.fs.pipe_file(self.path, data), deadline)


def read_files(fs: fsspec.AbstractFileSystem, paths: list[str]) -> dict[str, bytes]:
    """Many small files of ``fs`` at once, by path (s3fs fetches them concurrently); transient errors are retried, a
    missing file raises ``FileNotFoundError``."""
    return retrying(lambda: fs.cat(paths, on_error="raise")) if paths else {}


class SingleTryS3FileSystem(S3FileSystem):
    """s3fs whose requests are tried once (s3fs retries each ``retries`` times; only the class attribute sets it).
    fsspec caches instances per class, so one of these never stands in for the job's retrying ones, and it
    pickles by its class and options like any."""

    retries = 1


def single_try(fs: fsspec.AbstractFileSystem, deadline: Deadline) -> fsspec.AbstractFileSystem:
    """The S3 filesystem ``fs`` (same endpoint, credentials, options) with no retries of its own and its requests'
    timeouts ``deadline``'s (``Deadline.client_config``), for ``retrying_until`` to be the only retry layer."""
    options = fs.storage_options
    config = {**(options.get("config_kwargs") or {}), **deadline.client_config()}
    return SingleTryS3FileSystem(**{**options, "config_kwargs": config})


def location(uri: str, storage_options: dict[str, Any] | None = None) -> Location:
    """Resolve a local path, ``file://`` URI or ``s3://…`` URI to a ``Location``.

    S3 endpoint and credentials come from the standard AWS environment (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, profiles, …) unless ``storage_options`` name them (``endpoint_url``, ``key``, …).
    """
    options = with_default_options(uri, storage_options or {})
    fs, path = fsspec.core.url_to_fs(uri, **options)
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(os.path.expanduser(path))
    return Location(fs, path)


def with_default_options(uri: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """``storage_options`` with the job's defaults for ``uri``'s protocol under them (S3: ``S3_CONFIG``)."""
    protocol = fsspec.core.split_protocol(uri)[0]
    if protocol not in S3_PROTOCOLS:
        return storage_options
    config = {**S3_CONFIG, **(storage_options.get("config_kwargs") or {})}
    return {**storage_options, "config_kwargs": config}


def is_s3(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return bool(S3_PROTOCOLS.intersection(protocols))


def uri_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URI of ``path`` on ``fs`` as written in output rows."""
    if isinstance(fs, LocalFileSystem):
        return "file://" + os.path.abspath(path)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"
