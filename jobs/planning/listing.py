"""Expand SOURCE arguments (files, folders, globs, manifests; local or object store) into planned inputs.

Each planned input carries the ``source`` partition value of the SOURCE it came from: a slug of that SOURCE's
folder name, made safe for a path (partition values come from untrusted names). Files that are not media are
counted by reason, never silently dropped and never given rows.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from fsspec.asyn import sync

from common.errors import UsageError
from common.retries import retrying
from common.storage import Location, is_s3, location, uri_of
from schemas.media import media_kind
from schemas.tables import LISTING_SCHEMA

if TYPE_CHECKING:
    from s3fs import S3FileSystem

MANIFEST_EXTENSIONS = frozenset({".txt", ".csv", ".parquet"})
PLANNED_KINDS = frozenset({"image", "video"})
_GLOB_CHARS = re.compile(r"[*?\[]")

LIST_PAGE_SIZE = 1000
"""Keys per S3 ListObjectsV2 request (S3's maximum): what one listing step holds in memory."""
ROW_CHUNK = 65536
"""Listed rows gathered in Python before they become one Arrow record batch."""


@dataclass
class Listing:
    """Planned inputs, sorted and unique by URI, and what was found but not planned."""

    table: pa.Table
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return self.table.num_rows


@dataclass(frozen=True)
class _Found:
    uri: str
    size: int | None
    version: str | None = None


def list_sources(sources: Iterable[str], storage_options: dict[str, Any] | None = None) -> Listing:
    """List every SOURCE; raise ``UsageError`` for a SOURCE that does not exist.

    Files stream in from the listing and gather in Arrow chunks, so a million inputs cost Arrow's compact
    columns, not a Python object per file. A file named by several SOURCEs is planned once, under the first.
    """
    rows = _RowChunks()
    skipped: Counter = Counter()
    for source in sources:
        folder, found_files = _expand(source, storage_options or {})
        slug = partition_slug(folder or "root")
        for found in found_files:
            kind = media_kind(found.uri)
            if kind in PLANNED_KINDS:
                rows.append(found.uri, found.size, slug, kind, found.version)
            else:
                skipped[kind] += 1
    return Listing(table=_sorted_unique(rows.table()), skipped=skipped)


def partition_slug(name: str, max_length: int = 64) -> str:
    """A hive partition value safe on any filesystem; a short hash keeps altered names distinct."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "root"
    slug = slug[:max_length]
    if slug != name:
        slug = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return slug


class _RowChunks:
    """Listing rows gathered into Arrow record batches of ``ROW_CHUNK`` rows."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, int | None, str, str, str | None]] = []
        self._batches: list[pa.RecordBatch] = []

    def append(self, uri: str, size: int | None, source: str, kind: str, version: str | None) -> None:
        self._rows.append((uri, size, source, kind, version))
        if len(self._rows) >= ROW_CHUNK:
            self._flush()

    def table(self) -> pa.Table:
        self._flush()
        return pa.Table.from_batches(self._batches, schema=LISTING_SCHEMA)

    def _flush(self) -> None:
        if self._rows:
            columns = [pa.array(values, f.type) for values, f in zip(zip(*self._rows), LISTING_SCHEMA)]
            self._batches.append(pa.RecordBatch.from_arrays(columns, schema=LISTING_SCHEMA))
            self._rows = []


def _sorted_unique(table: pa.Table) -> pa.Table:
    """Sorted by URI, one row per URI: the sort is stable, so the row of the first SOURCE listed is kept."""
    table = table.take(pc.sort_indices(table, sort_keys=[("uri", "ascending")]))
    if table.num_rows < 2:
        return table
    uris = table.column("uri")
    first_of_uri = pc.not_equal(uris.slice(1), uris.slice(0, table.num_rows - 1))
    return table.filter(pa.chunked_array([pa.array([True]), *first_of_uri.chunks]))


def _expand(source: str, storage_options: dict[str, Any]) -> tuple[str, Iterator[_Found]]:
    """The SOURCE's folder name (its partition value before slugging) and the files it names."""
    loc = location(source, storage_options)
    if _GLOB_CHARS.search(source):
        matches = retrying(lambda: loc.fs.glob(loc.path, detail=True))
        if not matches:
            raise UsageError(f"source matches nothing: {source}")
        fixed = _GLOB_CHARS.split(loc.path, maxsplit=1)[0]
        return posixpath.basename(posixpath.dirname(fixed)), _glob_matches(loc, matches)
    try:
        info = retrying(lambda: loc.fs.info(loc.path))  # one HEAD (and a one-key listing) on S3, never a walk
    except FileNotFoundError:
        raise UsageError(f"source not found: {source}") from None
    if info["type"] == "directory":
        return posixpath.basename(loc.path.rstrip("/")), _walk(loc)
    stem, ext = posixpath.splitext(posixpath.basename(loc.path))
    if ext.lower() in MANIFEST_EXTENSIONS:
        return stem, _read_manifest(loc, storage_options)
    return posixpath.basename(posixpath.dirname(loc.path)), iter([_found(loc.uri, info)])


def _glob_matches(loc: Location, matches: dict[str, dict[str, Any]]) -> Iterator[_Found]:
    for path, info in sorted(matches.items()):
        if info.get("type") == "directory":
            yield from _walk(Location(loc.fs, path))
        else:
            yield _found(uri_of(loc.fs, path), info)


def _walk(loc: Location) -> Iterator[_Found]:
    """Every file under a folder, streamed: a page of keys at a time on S3, a directory at a time locally."""
    if is_s3(loc.fs):
        return _walk_s3(loc)
    if loc.is_local:
        return _walk_local(loc)
    return (_found(uri_of(loc.fs, p), i) for p, i in loc.fs.find(loc.path, detail=True).items())


def _found(uri: str, info: dict[str, Any]) -> _Found:
    """A file from an fsspec info dict: its size and version (ETag on object stores, else mtime)."""
    version = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return _Found(uri, info.get("size"), None if version is None else str(version))


def _walk_s3(loc: Location) -> Iterator[_Found]:
    bucket, key, _ = loc.fs.split_path(loc.path)
    prefix = key.rstrip("/") + "/" if key else ""  # a folder, not a stem: s3://b/img must not list b/img2/
    for page in _s3_pages(loc.fs, bucket, prefix):
        for obj in page:
            if not obj["Key"].endswith("/"):  # zero-byte folder markers that consoles create are not files
                yield _Found(uri_of(loc.fs, f"{bucket}/{obj['Key']}"), obj["Size"], obj.get("ETag"))


def _s3_pages(fs: S3FileSystem, bucket: str, prefix: str) -> Iterator[list[dict[str, Any]]]:
    """Recursive ListObjectsV2 (no delimiter), one page of ``LIST_PAGE_SIZE`` keys per step.

    Each request goes through s3fs's own call (its client, retries and error translation) and ``retrying``;
    unlike ``fs.find`` nothing is kept in s3fs's listings cache, so only the current page is in memory.
    """
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
    while True:
        page = retrying(lambda: sync(fs.loop, fs._call_s3, "list_objects_v2", **request))
        yield page.get("Contents", [])
        if not page.get("IsTruncated"):
            return
        request["ContinuationToken"] = page["NextContinuationToken"]


def _walk_local(loc: Location) -> Iterator[_Found]:
    """Symlinks are followed as fsspec follows them; each real directory is entered once, so a loop ends."""
    pending, entered = [loc.path], set()
    while pending:
        folder = pending.pop()
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in entered:
            continue
        entered.add((status.st_dev, status.st_ino))
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    pending.append(entry.path)
                else:
                    yield _local_file(loc, entry)


def _local_file(loc: Location, entry: os.DirEntry) -> _Found:
    """Size and mtime; both ``None`` for a broken link: still planned, so it ends as an error row."""
    try:
        status = entry.stat()
    except OSError:
        return _Found(uri_of(loc.fs, entry.path), None)
    return _Found(uri_of(loc.fs, entry.path), status.st_size, str(status.st_mtime_ns))


def _read_manifest(loc: Location, storage_options: dict[str, Any]) -> Iterator[_Found]:
    """A ``.txt`` lists one URI per line; ``.csv``/``.parquet`` have a ``uri`` column. Relative paths are
    relative to the manifest's folder. Listed files are not checked here: a missing one becomes an error row."""
    data = loc.read_bytes()
    ext = posixpath.splitext(loc.path)[1].lower()
    if ext == ".txt":
        entries = [line.strip() for line in data.decode("utf-8-sig").splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    else:
        try:
            table = pq.read_table(io.BytesIO(data)) if ext == ".parquet" else pacsv.read_csv(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise UsageError(f"cannot read manifest {loc.uri}: {exc}") from None
        if "uri" not in table.column_names:
            raise UsageError(f"manifest {loc.uri} has no 'uri' column")
        entries = [str(u) for u in table.column("uri").to_pylist() if u]
    folder = posixpath.dirname(loc.path)
    for entry in entries:
        if "://" in entry or entry.startswith("/"):
            target = location(entry, storage_options)
        else:
            target = Location(loc.fs, posixpath.normpath(posixpath.join(folder, entry)))
        yield _Found(target.uri, None)
