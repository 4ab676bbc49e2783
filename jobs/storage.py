"""One storage entry point for local paths and object stores (fsspec), and URIs as the output names them.

Every read and write of the job goes through ``location()``: listing, input bytes, Parquet, manifests. Output
rows name inputs by full URI (``file://`` + absolute path, or ``s3://bucket/key``), never percent-encoded.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem


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

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def write_bytes_atomic(self, data: bytes) -> None:
        """Publish ``data`` whole or not at all: rename on local disk, one PUT on an object store."""
        if not self.is_local:
            self.fs.pipe_file(self.path, data)
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        partial = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(partial, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, self.path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


def location(uri: str, storage_options: dict[str, Any] | None = None) -> Location:
    """Resolve a local path, ``file://`` URI or ``s3://…`` URI to a ``Location``."""
    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    if isinstance(fs, LocalFileSystem):
        path = os.path.abspath(os.path.expanduser(path))
    return Location(fs, path)


def uri_of(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """The URI of ``path`` on ``fs`` as written in output rows."""
    if isinstance(fs, LocalFileSystem):
        return "file://" + os.path.abspath(path)
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return f"{protocol}://{path}"
