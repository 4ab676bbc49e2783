"""Where everything lives under a job's output ``OUT``: the one definition the job's writers and every reader use.

```
OUT/frames/<partition>/part-<run_id>-<shard>-e<epoch>.parquet       one row per frame
OUT/detections/<partition>/part-<run_id>-<shard>-e<epoch>.parquet   one row per box
OUT/_runs/<run_id>.json                                    run manifest
OUT/_runs/<run_id>/plan.parquet                            the saved plan
OUT/_runs/<run_id>/shards/<shard>-e<epoch>.json            commit marker, written last
OUT/_runs/<run_id>/staging/<shard>/                        rows staged until their shard is published
OUT/_runs/_index/<model_fingerprint>.parquet               inputs earlier runs answered (``--incremental``)
OUT/_runs/_lease.json                                      the run lease: which run may write now
OUT/_runs/_lease.lock                                      a local OUT's lock file, held by the lease's process
OUT/_runs/_lease.write.lock                                a local OUT's lock file, held while the lease is rewritten
OUT/_runs/_epochs/<epoch>.json                             a lease holder's epoch record: which earlier markers count
OUT/tracks/<partition>/part-<key>.parquet                  one row per box of a track, one file per video
OUT/track_summaries/<partition>/part-<key>.parquet         one row per track
OUT/_runs/_tracks/<key>.json                               a video's tracks committed, written last
```

A shard's part files and marker carry the epoch of the output's lease they were written under
(``jobs.records.lease``), so that a writer of an earlier epoch never overwrites a later holder's file; which
markers count is ``common.epochs``' rule. Names without an epoch (``part-<run_id>-<shard>.parquet``,
``<shard>.json``) are those of outputs written before epochs, read as epoch 0.

A video's tracks are named by a key (``jobs.tracking.plan``): a hash of the video, the tracker's settings and
the committed detections read, so tracking the same detections again finds its work done.

Every path here is relative to ``OUT``, in ``/`` form, for ``Location.child``. A partition is
``run_date=<YYYY-MM-DD>/source=<slug>``. Run ids never start with ``_`` and shard ids are zero-padded digits, so
a name read back from a listing parses one way only.
"""

from __future__ import annotations

import posixpath
import re
from typing import NamedTuple

FRAMES, DETECTIONS = "frames", "detections"
TABLES = (FRAMES, DETECTIONS)
"""The two tables, each a folder of hive-partitioned Parquet under ``OUT``."""
TRACKS, TRACK_SUMMARIES = "tracks", "track_summaries"
TRACK_TABLES = (TRACKS, TRACK_SUMMARIES)
"""Written by ``yolonas-batch track`` from the committed detections: tracks and their summaries."""
RUNS = "_runs"
"""Everything about runs: manifests, plans, markers, staging, the answered-inputs index."""
OWNED = (*TABLES, *TRACK_TABLES, RUNS)
"""What the job owns under ``OUT`` (and ``--overwrite`` removes)."""
PARTIAL_SUFFIX = ".tmp"
"""A file published atomically is written under this suffix first (``workers.files.write_atomic``): one left
behind is a crash's leftover."""

ICEBERG = "_iceberg"
"""The default warehouse of ``yolonas-batch iceberg`` (``tables``): Iceberg's metadata, and the files its deletes
rewrite; the tables' other data files are the part files themselves, never copied."""

EPOCHS = posixpath.join(RUNS, "_epochs")
"""The lease holders' epoch records (``common.epochs``)."""

_EPOCH = r"(?:-e(?P<epoch>[1-9][0-9]*))?"
_PARTITION = re.compile(r"run_date=(?P<run_date>[0-9]{4}-[0-9]{2}-[0-9]{2})/source=(?P<source>[A-Za-z0-9._-]+)")
_PART_FILE = re.compile(rf"part-(?P<run>.+)-(?P<shard>[0-9]+){_EPOCH}\.parquet")
_MARKER = re.compile(rf"(?P<run>[^/_][^/]*)/shards/(?P<shard>[0-9]+){_EPOCH}\.json")
_EPOCH_RECORD = re.compile(r"_epochs/(?P<epoch>[0-9]{10})\.json")
_PARTIAL = re.compile(rf"(?P<name>.+)\.[0-9a-f]{{8}}{re.escape(PARTIAL_SUFFIX)}")
_TRACK_PART = re.compile(r"part-(?P<key>[0-9a-f]{20})\.parquet")
_TRACK_MARKER = re.compile(r"(?P<key>[0-9a-f]{20})\.json")
_PLAN = re.compile(r"(?P<run>[^/_][^/]*)/plan\.parquet")
_MANIFEST = re.compile(r"(?P<run>[^/_][^/]*)\.json")


class ShardFile(NamedTuple):
    """What a part file's or a marker's name says: the run, the shard and the lease epoch it was written under
    (0: a name from before epochs)."""

    run_id: str
    shard_id: str
    epoch: int


def _epoch_suffix(epoch: int) -> str:
    return f"-e{epoch}" if epoch else ""


def _shard_file(match: re.Match[str] | None) -> ShardFile | None:
    return ShardFile(match["run"], match["shard"], int(match["epoch"] or 0)) if match else None


def partition(run_date: str, source: str) -> str:
    """The hive partition of a frame: the day its run was planned and the slug of the SOURCE it came from."""
    return f"run_date={run_date}/source={source}"


def parse_partition(folder: str) -> tuple[str, str] | None:
    """The (run date, source) of a partition folder (``partition``'s form), None for another folder: what a reader
    that takes the values from the path rather than the rows (Iceberg's partition values) reads."""
    match = _PARTITION.fullmatch(folder)
    return (match["run_date"], match["source"]) if match else None


def part_file(table: str, partition: str, run_id: str, shard_id: str, epoch: int) -> str:
    """The file of ``table`` holding one shard's rows of one partition: fixed by run, shard and epoch, so a shard
    published again under the same epoch overwrites its own files, and under another never touches them."""
    return posixpath.join(table, partition, f"part-{run_id}-{shard_id}{_epoch_suffix(epoch)}.parquet")


def parse_part_file(name: str) -> ShardFile | None:
    """What a part file's name (its basename or any path ending in it) says; None for another file."""
    return _shard_file(_PART_FILE.fullmatch(posixpath.basename(name)))


def unfinished(name: str) -> str | None:
    """The name a partial ``.tmp`` file (``workers.files.write_atomic``) was to be published under; None for a
    name that is not one."""
    match = _PARTIAL.fullmatch(name)
    return match["name"] if match else None


def manifest(run_id: str) -> str:
    return posixpath.join(RUNS, f"{run_id}.json")


def parse_manifest(relative: str) -> str | None:
    """The run id of a manifest's path relative to ``_runs``; None for anything else there."""
    match = _MANIFEST.fullmatch(relative)
    return match["run"] if match else None


def plan(run_id: str) -> str:
    return posixpath.join(RUNS, run_id, "plan.parquet")


def parse_plan(relative: str) -> str | None:
    """The run id of a saved plan's path relative to ``_runs``; None for anything else there."""
    match = _PLAN.fullmatch(relative)
    return match["run"] if match else None


def markers(run_id: str) -> str:
    """The folder of a run's commit markers."""
    return posixpath.join(RUNS, run_id, "shards")


def marker(run_id: str, shard_id: str, epoch: int) -> str:
    """A shard's commit marker, written under lease epoch ``epoch``: the shard is done once a marker of it
    counts (``common.epochs``)."""
    return posixpath.join(markers(run_id), f"{shard_id}{_epoch_suffix(epoch)}.json")


def parse_marker(relative: str) -> ShardFile | None:
    """What a marker's path relative to ``_runs`` says; None for anything else there."""
    return _shard_file(_MARKER.fullmatch(relative))


def epoch_record(epoch: int) -> str:
    """The epoch record of the lease holder of ``epoch``, zero-padded so that names sort as epochs do."""
    return posixpath.join(EPOCHS, f"{epoch:010d}.json")


def parse_epoch_record(relative: str) -> int | None:
    """The epoch of an epoch record's path relative to ``_runs``; None for anything else there."""
    match = _EPOCH_RECORD.fullmatch(relative)
    return int(match["epoch"]) if match else None


def staging(run_id: str, shard_id: str | None = None) -> str:
    """Where the write stage stages rows of ``shard_id`` (of every shard of the run, when None): outside the
    tables' folders, so no reader's glob ever sees them."""
    folder = posixpath.join(RUNS, run_id, "staging")
    return folder if shard_id is None else posixpath.join(folder, shard_id)


def answered_index(model_fingerprint: str) -> str:
    """The answered-inputs index of one model, in a folder of its own: apart from the manifests and never taken
    for a run's folder (no run id starts with ``_``)."""
    return posixpath.join(RUNS, "_index", f"{model_fingerprint}.parquet")


def lease() -> str:
    """The run lease (``jobs.records.lease``): the one run allowed to write into ``OUT``, while it lasts."""
    return posixpath.join(RUNS, "_lease.json")


def lease_lock() -> str:
    """The file a local ``OUT``'s lease holder keeps locked (``flock``) while its process lives."""
    return posixpath.join(RUNS, "_lease.lock")


def lease_write_lock() -> str:
    """The file a local ``OUT``'s lease store keeps locked (``flock``) for the instant it compares and rewrites the
    record, so that no other process or thread writes in between."""
    return posixpath.join(RUNS, "_lease.write.lock")


def write_probe(token: str) -> str:
    """A file written and removed at start to prove the output writable (not a manifest: it starts with a dot)."""
    return posixpath.join(RUNS, f".write-probe-{token}")


TRACK_MARKERS = posixpath.join(RUNS, "_tracks")
"""The folder of the videos' track markers."""
TRACK_KEY_HALF = 10
"""Hex digits of each half of a track key: the video's (every version of its tracks shares it), then the
version's."""


def track_key_video(key: str) -> str:
    """The video half of a track key: what the keys of one video's versions have in common."""
    return key[:TRACK_KEY_HALF]


def track_part_file(table: str, partition: str, key: str) -> str:
    """The file of ``table`` (``tracks`` or ``track_summaries``) holding one video's tracks, named by its key."""
    return posixpath.join(table, partition, f"part-{key}.parquet")


def parse_track_part_file(name: str) -> str | None:
    """The key of a track table's part file (its basename or any path ending in it); None for another file."""
    match = _TRACK_PART.fullmatch(posixpath.basename(name))
    return match["key"] if match else None


def track_marker(key: str) -> str:
    """A video's track marker: its presence means the video's tracks of this key are written."""
    return posixpath.join(TRACK_MARKERS, f"{key}.json")


def parse_track_marker(name: str) -> str | None:
    """The key of a track marker (its basename or any path ending in it); None for another file."""
    match = _TRACK_MARKER.fullmatch(posixpath.basename(name))
    return match["key"] if match else None
