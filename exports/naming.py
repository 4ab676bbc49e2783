"""The name each exported frame has inside an export: relative, unique, stable, and safe to use as a path.

Annotation tools find an image by a path relative to an image root they are given (COCO ``file_name``, YOLO's
``images/<split>/…``). The root is the deepest folder holding every input of the output (all committed rows of
all runs, whatever one export selects), so names are the inputs' own relative paths (``camera one/день 1/
photo.jpg``), for one SOURCE folder usually its layout exactly, and a frame keeps its name from one export of
the output to the next. The root is found from the smallest and largest URI alone (every URI between two sorted
strings shares their common prefix), which DuckDB reads from the Parquet statistics.

URIs come from untrusted file and key names: a name never starts with ``/``, never has a ``..``, ``.`` or empty
segment, a control character or a backslash, and no segment outgrows a filesystem's 255 bytes. A segment that
had to change gets a short hash of the original, so two inputs never end up with the same name.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re

VIDEO_FRAME = "frame_{:06d}.jpg"
"""A sampled video frame, under a folder named like its video: ``clip.mp4/frame_000412.jpg``, the number being
the frame's ``frame_index`` (its number in sequential decoding from 0), as ``ffmpeg … -start_number 0`` numbers
the frames it extracts."""
MAX_SEGMENT_BYTES = 200
"""Below the usual 255-byte limit, leaving room for a hash and a label file's suffix."""
FLAT_SEPARATOR = "__"
"""Stands for ``/`` in a flat name. File and folder names seldom hold two underscores in a row, or one beside a
``/`` (such names get a hash), so most flat names are their path as it reads."""
_FLAT_HASHED = "___"
"""Before a flat name's hash: three underscores, a run no unhashed flat name holds."""
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]")


def image_root(first_uri: str, last_uri: str) -> str:
    """The URI prefix (ending in ``/``) of the deepest folder holding every URI from ``first_uri`` to
    ``last_uri`` in sorted order; ``""`` when there is none (different schemes or buckets)."""
    prefix = os.path.commonprefix([first_uri, last_uri])
    scheme_end = first_uri.find("://")
    if scheme_end < 0:
        return ""
    cut = prefix.rfind("/")
    path_start = scheme_end + 3
    is_file = first_uri.startswith("file://")
    # A local root may be "/" itself; an object store's root is at least a bucket.
    if cut < path_start or (not is_file and cut == path_start):
        return ""
    return prefix[: cut + 1]


def relative_name(uri: str, root: str) -> str:
    """``uri`` below ``root`` as a safe relative path; without a root, ``<scheme>/<bucket or path>/…``."""
    if root and uri.startswith(root):
        relative = uri[len(root) :]
    else:
        scheme, _, rest = uri.partition("://")
        relative = f"{scheme}/{rest.lstrip('/')}" if rest else uri
    return "/".join(safe_segment(segment) for segment in relative.split("/"))


def frame_name(uri: str, frame_index: int, is_video: bool, root: str) -> str:
    """The name of one exported frame: the input's relative path, or ``<video path>/frame_%06d.jpg``."""
    name = relative_name(uri, root)
    return f"{name}/{VIDEO_FRAME.format(frame_index)}" if is_video else name


def safe_segment(segment: str) -> str:
    """``segment`` as is when it is a plain file or folder name, else a cleaned form with a hash of the
    original (so distinct inputs keep distinct names)."""
    size = len(segment.encode())
    if segment not in ("", ".", "..") and size <= MAX_SEGMENT_BYTES and not _UNSAFE.search(segment):
        return segment
    cleaned = _UNSAFE.sub("_", segment).replace(".", "_") if segment in ("", ".", "..") else _UNSAFE.sub("_", segment)
    cleaned = cleaned.encode()[: MAX_SEGMENT_BYTES - 16].decode(errors="ignore") or "_"
    digest = hashlib.sha1(segment.encode(errors="surrogatepass")).hexdigest()[:8]
    stem, dot, ext = cleaned.rpartition(".")
    if dot and stem and len(ext) <= 8:  # keep the extension last: tools choose a decoder by it
        return f"{stem}-{digest}.{ext}"
    return f"{cleaned}-{digest}"


def flat_name(name: str) -> str:
    """``name`` (a relative path, as ``frame_name`` makes it) as one file name, for tools that take no folders
    under an image root: its segments joined by ``__``, the extension last (``a b/c d/x.jpg`` → ``a b__c d__x.jpg``).

    Names with distinct stems keep distinct stems (a YOLO label file is named by its image's stem), with no
    memory of the names met before. A join reads back unambiguously when no segment holds ``__`` and no ``_``
    borders a separator; any other name, or one longer than ``MAX_SEGMENT_BYTES``, is cut to fit and gets ``___``
    and a short hash of its stem before the extension. A join never holds three underscores in a row, so a hashed
    name never equals an unhashed one, and the hash tells two hashed names apart."""
    stem, ext = posixpath.splitext(name)
    segments = stem.split("/")
    joined = FLAT_SEPARATOR.join(segments)
    if _joins_unambiguously(segments) and len(joined.encode()) + len(ext.encode()) <= MAX_SEGMENT_BYTES:
        return joined + ext
    digest = hashlib.sha1(stem.encode(errors="surrogatepass")).hexdigest()[:8]
    room = MAX_SEGMENT_BYTES - len(ext.encode()) - len(_FLAT_HASHED) - len(digest)
    kept = joined.encode()[:room].decode(errors="ignore")
    return f"{kept}{_FLAT_HASHED}{digest}{ext}"


def _joins_unambiguously(segments: list[str]) -> bool:
    """Whether the only ``__`` in the segments' join are the separators: none inside a segment, and no ``_`` at
    a segment's end that meets one."""
    inner_ends = [segment[-1] for segment in segments[:-1]] + [segment[0] for segment in segments[1:]]
    return "_" not in inner_ends and not any(FLAT_SEPARATOR in segment for segment in segments)
