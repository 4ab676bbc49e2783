"""Export files written a piece at a time to local disk, then published whole under the target.

One export file can outgrow memory (CVAT's XML holds every frame), while ``Location.write_bytes_atomic`` takes
the whole file as bytes. So a writer spools its text to a local file and publishes that as the job publishes its
own files: readers see no file or the complete one, never a part of it. On local disk the spool lies beside its
destination as ``<name>.<random>.tmp`` (the job's suffix for partial files) and is renamed over it; for an object
store it lies in the system's temporary folder and goes up in one upload (s3fs sends a large file in parts, and the
object appears only when the last part is in), retried whole like any PUT.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from typing import TextIO

from common.retries import retrying
from common.storage import Location


class Spool:
    """A text file under construction for ``destination``: ``write`` pieces, then ``publish`` once.

    A spool that is never published (the export failed part-way) is removed when it is garbage-collected or the
    process exits, so a failed export leaves no partial file behind under its target or in the temporary folder.
    """

    def __init__(self, destination: Location) -> None:
        self.destination = destination
        self._path = _partial_path(destination)
        self._file: TextIO = open(self._path, "w", encoding="utf-8")
        self._cleanup = weakref.finalize(self, _remove, self._file, self._path)

    def write(self, text: str) -> None:
        self._file.write(text)

    def publish(self, header: str = "") -> None:
        """Put ``header`` (known only now, e.g. a count) and then everything written under the destination."""
        self._file.close()
        source = self._prepend(header) if header else self._path
        try:
            if self.destination.is_local:
                _fsync(source)
                os.replace(source, self.destination.path)
            else:
                retrying(lambda: self.destination.fs.put_file(source, self.destination.path))
        finally:
            if source != self._path and os.path.exists(source):
                os.remove(source)
            self._cleanup()

    def _prepend(self, header: str) -> str:
        """A second spool holding ``header`` and then this one's text, copied in blocks (memory stays flat)."""
        combined = _partial_path(self.destination)
        with open(combined, "w", encoding="utf-8") as out, open(self._path, encoding="utf-8") as body:
            out.write(header)
            shutil.copyfileobj(body, out)
        return combined


def _partial_path(destination: Location) -> str:
    if destination.is_local:
        os.makedirs(os.path.dirname(destination.path) or ".", exist_ok=True)
        return f"{destination.path}.{uuid.uuid4().hex[:8]}.tmp"
    handle, path = tempfile.mkstemp(prefix="yolonas-export-", suffix=".tmp")
    os.close(handle)
    return path


def _fsync(path: str) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _remove(handle: TextIO, path: str) -> None:
    handle.close()
    if os.path.exists(path):
        os.remove(path)
