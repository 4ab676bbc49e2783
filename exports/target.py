"""Where an export's files go: a local folder or an object-store prefix, through the project's storage.

Two kinds of file: many small ones (a YOLO label file per frame) and a few large ones (a COCO JSON of millions
of boxes). Small files are published whole (a temporary file renamed locally; on S3 a PUT, sent concurrently in
batches, since one PUT at a time would make a million label files take hours; locally a few threads write them).
Large files go through
``exports.spool``: written piece by piece to local disk, never held in memory, and published once complete. A
relative path from the export is checked to stay inside the target, whatever input names it came from.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TextIO

from common.errors import UsageError
from common.retries import retrying
from common.storage import Location
from exports.spool import Spool

PUT_BATCH_FILES = 256
PUT_BATCH_BYTES = 16 * 2**20
"""Small files gathered before one concurrent batch of PUTs to an object store."""
LOCAL_WRITERS = 8
MAX_FILES_IN_FLIGHT = 1024
"""Small local files are written by a few threads: creating a file is a system call that waits on the disk, and
several at once are several times faster than one at a time. At most this many wait, with their bytes."""
COPY_BLOCK_CHARS = 2**20


class ExportTarget:
    """The files of one export under ``where``."""

    def __init__(self, where: Location) -> None:
        self.where = where
        self._pending: dict[str, bytes] = {}
        self._pending_bytes = 0
        self._pool: ThreadPoolExecutor | None = None
        self._writing: deque[Future[None]] = deque()
        self._folder = ""
        """The folder the last small file went to: names come sorted, so a folder's files mostly come together."""

    def prepare(self) -> None:
        """Check the target before anything is read: an export goes to a new or empty folder (stale files of an
        earlier export, such as a label file of a frame no longer selected, would mix with this one's), and a
        local one must be creatable."""
        fs = self.where.fs
        try:
            if retrying(lambda: fs.exists(self.where.path)) and retrying(lambda: fs.ls(self.where.path, detail=False)):
                raise UsageError(f"--to {self.where.uri} is not empty; export into a new or empty folder")
            if self.where.is_local:
                os.makedirs(self.where.path, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--to {self.where.uri}: cannot write there ({exc.strerror or exc})") from None

    def path(self, relative: str) -> str:
        """The target's path of ``relative``, refused when it would leave the target."""
        parts = relative.split("/")
        if relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"unsafe path in an export: {relative!r}")
        return posixpath.join(self.where.path, relative)

    def put(self, relative: str, data: bytes) -> None:
        """A small file, published whole, soon: ``flush`` waits for every file put so far (and raises the
        first error), so a writer calls it before it reports its files written."""
        path = self.path(relative)
        if self.where.is_local:
            self._makedirs(posixpath.dirname(path))
            if self._pool is None:
                self._pool = ThreadPoolExecutor(LOCAL_WRITERS, thread_name_prefix="export-files")
            self._writing.append(self._pool.submit(_write_whole, path, data))
            if len(self._writing) >= MAX_FILES_IN_FLIGHT:
                self._wait(MAX_FILES_IN_FLIGHT // 2)
            return
        self._pending[path] = data
        self._pending_bytes += len(data)
        if len(self._pending) >= PUT_BATCH_FILES or self._pending_bytes >= PUT_BATCH_BYTES:
            self._send()

    def flush(self) -> None:
        self._send()
        self._wait(0)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _send(self) -> None:
        if self._pending:
            batch, self._pending, self._pending_bytes = self._pending, {}, 0
            retrying(lambda: self.where.fs.pipe(batch))  # s3fs sends a dict of files concurrently

    def _wait(self, left: int) -> None:
        """Wait for the oldest local writes until ``left`` are still running."""
        while len(self._writing) > left:
            self._writing.popleft().result()

    def spool(self, relative: str) -> Spool:
        """A large file, written piece by piece to local disk and published whole (``exports.spool``)."""
        self.path(relative)
        return Spool(self.where.child(relative))

    def _makedirs(self, folder: str) -> None:
        if folder != self._folder:
            os.makedirs(folder, exist_ok=True)
            self._folder = folder


def copy_text(source: TextIO, spool: Spool) -> None:
    """Append all of ``source`` (rewound first) to ``spool`` in blocks, then close ``source``."""
    source.seek(0)
    for block in iter(lambda: source.read(COPY_BLOCK_CHARS), ""):
        spool.write(block)
    source.close()


def _write_whole(path: str, data: bytes) -> None:
    """Write ``path`` through a temporary file renamed over it: readers never see a part of it. No fsync: an
    export is made again from the output, and a sync per label file would cost more than the export."""
    partial = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)
