"""Expand SOURCE arguments (files, folders, globs, manifests; local or object store) into planned inputs.

Each planned input carries the ``source`` partition value of the SOURCE it came from: a slug of that SOURCE's
folder name, made safe for a path (partition values come from untrusted names). Files that are not media are
counted by reason, never silently dropped and never given rows.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs.errors import UsageError
from jobs.storage import Location, location, uri_of

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})
MANIFEST_EXTENSIONS = frozenset({".txt", ".csv", ".parquet"})
_GLOB_CHARS = re.compile(r"[*?\[]")

LISTING_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("source", pa.string(), nullable=False),
    ]
)


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


def list_sources(sources: Iterable[str], storage_options: dict[str, Any] | None = None) -> Listing:
    """List every SOURCE; raise ``UsageError`` for a SOURCE that does not exist."""
    rows: dict[str, tuple[int | None, str]] = {}
    skipped: Counter = Counter()
    for source in sources:
        folder, found_files = _expand(source, storage_options or {})
        slug = partition_slug(folder or "root")
        for found in found_files:
            kind = media_kind(found.uri)
            if kind == "image":
                rows.setdefault(found.uri, (found.size, slug))
            else:
                skipped[kind] += 1
    uris = sorted(rows)
    table = pa.table(
        {
            "uri": pa.array(uris, pa.string()),
            "size": pa.array([rows[u][0] for u in uris], pa.int64()),
            "source": pa.array([rows[u][1] for u in uris], pa.string()),
        },
        schema=LISTING_SCHEMA,
    )
    return Listing(table=table, skipped=skipped)


def media_kind(uri: str) -> str:
    """``image``, or the reason a file is not planned (``video not supported``, ``not media``)."""
    ext = posixpath.splitext(uri)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video not supported"
    return "not media"


def partition_slug(name: str, max_length: int = 64) -> str:
    """A hive partition value safe on any filesystem; a short hash keeps altered names distinct."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "root"
    slug = slug[:max_length]
    if slug != name:
        slug = f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return slug


def _expand(source: str, storage_options: dict[str, Any]) -> tuple[str, Iterator[_Found]]:
    """The SOURCE's folder name (its partition value before slugging) and the files it names."""
    loc = location(source, storage_options)
    if _GLOB_CHARS.search(source):
        matches = loc.fs.glob(loc.path, detail=True)
        if not matches:
            raise UsageError(f"source matches nothing: {source}")
        fixed = _GLOB_CHARS.split(loc.path, maxsplit=1)[0]
        return posixpath.basename(posixpath.dirname(fixed)), _glob_matches(loc, matches)
    if not loc.fs.exists(loc.path):
        raise UsageError(f"source not found: {source}")
    if loc.fs.isdir(loc.path):
        return posixpath.basename(loc.path.rstrip("/")), _walk(loc)
    stem, ext = posixpath.splitext(posixpath.basename(loc.path))
    if ext.lower() in MANIFEST_EXTENSIONS:
        return stem, _read_manifest(loc, storage_options)
    return posixpath.basename(posixpath.dirname(loc.path)), iter([_Found(loc.uri, loc.fs.size(loc.path))])


def _glob_matches(loc: Location, matches: dict[str, dict[str, Any]]) -> Iterator[_Found]:
    for path, info in sorted(matches.items()):
        if info.get("type") == "directory":
            yield from _walk(Location(loc.fs, path))
        else:
            yield _Found(uri_of(loc.fs, path), info.get("size"))


def _walk(loc: Location) -> Iterator[_Found]:
    for path, info in sorted(loc.fs.find(loc.path, detail=True).items()):
        if info.get("type") != "directory":
            yield _Found(uri_of(loc.fs, path), info.get("size"))


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
