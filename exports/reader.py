"""Read a job's output as a stream of ``FrameRecord`` values, in bounded memory, local or on S3.

What is read is exactly what the job committed: part files of shards whose marker exists (files of a shard
still being written, or left by a killed attempt, are skipped), and of each frame the newest row across runs
(``run_id`` sorts by time), or only the rows of ``--run-id``.

DuckDB does the work that needs every row at once (the newest row per frame, the join of boxes to the chosen
rows, the sort) under a memory limit, spilling to a temporary folder, and hands back Arrow batches; Python only
ever holds a batch of frames and a batch of boxes. Frames and boxes come as two streams sorted the same way and
are merged here, so no frame's boxes are gathered into lists by SQL. DuckDB reads local files itself and object
stores through the job's own fsspec filesystem (registered with DuckDB), so S3 works with the job's credentials
and retries and without DuckDB's httpfs extension, which would have to be downloaded.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import duckdb
import pyarrow as pa
from pydantic import ValidationError

from exports.naming import frame_name, image_root
from exports.records import Box, Categories, FrameRecord, model_version
from exports.select import ClassMap, Splitter, class_map
from jobs.errors import UsageError
from jobs.listing import media_kind
from jobs.storage import Location, location, retrying, uri_of
from schemas.export_config import ExportConfig
from schemas.manifest import RunManifest
from schemas.tables import STATUS_OK
from workers.errors import one_line

MEMORY_LIMIT = "256MB"
"""DuckDB's budget: past it, the dedupe, join and sort spill to the temporary folder. DuckDB itself takes about
200 MB more; a larger budget made exports of 8 M boxes no faster (benchmarks/export_scale.py)."""
BATCH_ROWS = 8192
"""Rows per Arrow batch taken from DuckDB: what Python holds of each stream at a time."""

_PART_FILE = re.compile(r"part-(?P<run>.+)-(?P<shard>[0-9]+)\.parquet")
_MARKER = re.compile(r"(?P<run>[^/]+)/shards/(?P<shard>[^/]+)\.json")
_FRAME_COLUMNS = ("run_id", "source_uri", "frame_index", "timestamp_s", "width", "height", "status", "error")
_BOX_COLUMNS = ("source_uri", "frame_index", "class_id", "score", "x1", "y1", "x2", "y2")


@dataclass
class CommittedFiles:
    """What of an output an export may read: run manifests and the part files of committed shards."""

    manifests: dict[str, Location]
    """Run id -> its manifest, for every run in the output."""
    frames: dict[str, list[str]] = field(default_factory=dict)
    detections: dict[str, list[str]] = field(default_factory=dict)
    """Run id -> part files of its committed shards (paths as DuckDB reads them), for each table."""

    def of(self, table: str, run_id: str | None = None) -> list[str]:
        """Part files of ``table`` (``frames`` or ``detections``): of ``run_id``, or of every run."""
        files: dict[str, list[str]] = getattr(self, table)
        return list(files.get(run_id, [])) if run_id else [path for paths in files.values() for path in paths]


def committed_files(out: Location, run_id: str | None = None) -> CommittedFiles:
    """List the output (one recursive listing of ``_runs`` and one per table) and keep the part files of
    committed shards. Raises ``UsageError`` for what is not a job output, or a ``run_id`` it does not hold."""
    runs_folder = out.child("_runs")
    fs = out.fs
    if not _exists(out):
        raise UsageError(f"{out.uri} does not exist")
    listed = _find(runs_folder)
    manifests: dict[str, Location] = {}
    committed: dict[str, set[str]] = defaultdict(set)
    for path in listed:
        relative = posixpath.relpath(path, runs_folder.path)
        if "/" not in relative and relative.endswith(".json"):
            manifests[relative[: -len(".json")]] = Location(fs, path)
        elif match := _MARKER.fullmatch(relative):
            committed[match["run"]].add(match["shard"])
    if not manifests:
        raise UsageError(f"{out.uri} is not a job output (no run manifest _runs/<run_id>.json)")
    if run_id is not None and run_id not in manifests:
        known = sorted(manifests)
        shown = ", ".join(known[-5:]) + (f" and {len(known) - 5} older" if len(known) > 5 else "")
        raise UsageError(f"--run-id {run_id}: no such run in {out.uri} (runs: {shown})")
    files = CommittedFiles(manifests)
    for table in ("frames", "detections"):
        found: dict[str, list[str]] = getattr(files, table)
        for path in sorted(_find(out.child(table))):
            match = _PART_FILE.fullmatch(posixpath.basename(path))
            if match and match["run"] in manifests and match["shard"] in committed.get(match["run"], ()):
                found.setdefault(match["run"], []).append(path if out.is_local else uri_of(fs, path))
    return files


@dataclass(frozen=True)
class Selection:
    """What the reader chose, known before the first frame: for the progress bar and the summary."""

    frames: int
    """Frames the stream will yield (``ok`` ones, and ``error`` ones with ``--errors``)."""
    errors: int
    """Frames whose newest row is an ``error``: left out, or exported without boxes with ``--errors``."""
    runs: tuple[str, ...]
    """Runs whose rows are exported, oldest first."""
    root: str
    """The URI prefix names are relative to (``""``: names start with the scheme)."""


class OutputReader:
    """The frames of one job output to export, as ``FrameRecord`` values sorted by (source URI, frame index).

    Use as a context manager (it owns a DuckDB database in a temporary folder); iterate once."""

    def __init__(self, config: ExportConfig, *, memory_limit: str | None = None, temp_dir: str | None = None):
        self.config = config
        self.out = location(config.output, config.storage_options)
        self.splitter = Splitter(config.split)
        files = committed_files(self.out, config.run_id)
        if not files.of("frames", config.run_id):
            raise UsageError(f"{self._what()} has no committed frames (no shard of it has finished)")
        self._folder = tempfile.mkdtemp(prefix="yolonas-export-", dir=temp_dir)
        try:
            self._db = _connect(self._folder, memory_limit or MEMORY_LIMIT, self.out)
            self.selection = self._select(files)
            self.class_map = self._class_map(files.manifests)
        except BaseException:
            self.close()
            raise
        self._detections = files.of("detections", config.run_id)
        self.boxes = 0
        """Boxes yielded so far."""

    @property
    def categories(self) -> Categories:
        return self.class_map.categories

    def __enter__(self) -> "OutputReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            db.close()  # closing twice is harmless
        shutil.rmtree(self._folder, ignore_errors=True)

    def __iter__(self) -> Iterator[FrameRecord]:
        boxes = _BoxStream(self._box_batches(), self.class_map)
        root = self.selection.root
        for batch in self._stream(f"select * from selected where {self._exported} order by source_uri, frame_index"):
            columns = {name: batch.column(name).to_pylist() for name in _FRAME_COLUMNS}
            for run_id, uri, index, timestamp, width, height, status, error in zip(
                *(columns[n] for n in _FRAME_COLUMNS)
            ):
                ok = status == STATUS_OK
                kept = boxes.take(uri, index) if ok else ()
                self.boxes += len(kept)
                is_video = media_kind(uri) == "video"
                yield FrameRecord(
                    source_uri=uri,
                    frame_index=index,
                    timestamp_s=timestamp,
                    width=width or 0,
                    height=height or 0,
                    run_id=run_id,
                    is_video=is_video,
                    name=frame_name(uri, index, is_video, root),
                    split=self.splitter(uri),
                    boxes=kept,
                    error=None if ok else (error or "error"),
                )
        boxes.finish()

    @property
    def _exported(self) -> str:
        return "true" if self.config.include_errors else f"status = '{STATUS_OK}'"

    def _what(self) -> str:
        return f"run {self.config.run_id}" if self.config.run_id else self.out.uri

    def _select(self, files: CommittedFiles) -> Selection:
        """Keep the newest committed row of every frame (a table in DuckDB's database, spilled as needed)."""
        self._sql(
            f"""create table selected as
                select {", ".join(_FRAME_COLUMNS)} from read_parquet($files, hive_partitioning = false)
                qualify row_number() over (partition by source_uri, frame_index order by run_id desc) = 1""",
            files=files.of("frames", self.config.run_id),
        )
        frames, errors = self._sql(
            f"""select count(*) filter (where {self._exported}), count(*) filter (where status <> '{STATUS_OK}')
                from selected"""
        ).fetchone()
        if frames + errors == 0:
            raise UsageError(f"{self._what()} has no committed frames")
        runs = self._sql(f"select distinct run_id from selected where {self._exported} order by 1").fetchall()
        # Names are relative to the folder of every input in the output, whatever this export selects, so the
        # same frame has the same name in every export of the output (--run-id, --errors, ... change no name).
        first, last = self._sql(
            "select min(source_uri), max(source_uri) from read_parquet($files, hive_partitioning = false)",
            files=files.of("frames"),
        ).fetchone()
        return Selection(frames, errors, tuple(r for (r,) in runs), image_root(first, last))

    def _class_map(self, manifests: dict[str, Location]) -> ClassMap:
        """The model's classes, the same in every run exported (else boxes of one id would mean two classes),
        and the model versions the boxes come from."""
        names: dict[tuple[str, ...], list[str]] = defaultdict(list)
        versions: dict[str, None] = {}
        named = [self.config.run_id] if self.config.run_id else sorted(manifests)[-1:]
        for run_id in self.selection.runs or named:  # no row exported: the classes of the run asked for
            model = _manifest(manifests[run_id]).model
            names[tuple(model.class_names)].append(run_id)
            versions[model_version(model)] = None
        if len(names) > 1:
            (first, *_), (second, *_) = list(names.values())[:2]
            raise UsageError(
                f"runs {first} and {second} in {self.out.uri} have different model classes; export one with --run-id"
            )
        mapped = class_map(next(iter(names)), self.config.classes)
        categories = replace(mapped.categories, model_version="+".join(versions))
        return replace(mapped, categories=categories)

    def _box_batches(self) -> Iterator[pa.RecordBatch]:
        kept = self.class_map.kept_class_ids
        if not self._detections or not kept or not self.selection.frames:
            return iter(())
        # Boxes of the chosen rows only. Within one run every frame has one row, and only ok rows have boxes, so
        # when the files are one run's (--run-id, or an output of one run) the join to the chosen rows is skipped.
        one_run = len({posixpath.basename(f).rsplit("-", 1)[0] for f in self._detections}) == 1
        join = (
            ""
            if one_run
            else f"""semi join selected s on d.run_id = s.run_id and d.source_uri = s.source_uri
                     and d.frame_index = s.frame_index and s.status = '{STATUS_OK}'"""
        )
        query = f"""
            select {", ".join(f"d.{c}" for c in _BOX_COLUMNS)}
            from read_parquet($files, hive_partitioning = false) d {join}
            where d.score::double >= $min_score and d.class_id in ({", ".join(str(int(c)) for c in kept)})
            order by d.source_uri, d.frame_index, d.score desc, d.class_id, d.x1, d.y1, d.x2, d.y2"""
        return self._stream(query, files=self._detections, min_score=float(self.config.min_score))

    def _stream(self, query: str, **params: Any) -> Iterator[pa.RecordBatch]:
        """Batches of a query's result as DuckDB makes them; each stream has its own connection, so frames
        and boxes can be read side by side."""
        cursor = self._db.cursor()
        try:
            yield from cursor.sql(query, params=params or None).to_arrow_reader(BATCH_ROWS)
        except duckdb.Error as exc:
            raise UsageError(f"cannot read {self.out.uri}: {one_line(exc, keep='first')}") from None
        finally:
            cursor.close()

    def _sql(self, query: str, **params: Any) -> Any:
        try:
            return self._db.execute(query, params or None)
        except duckdb.Error as exc:
            raise UsageError(f"cannot read {self.out.uri}: {one_line(exc, keep='first')}") from None


class _BoxStream:
    """The boxes of the chosen frames, sorted like the frames: each frame takes the run of rows with its key."""

    def __init__(self, batches: Iterator[pa.RecordBatch], classes: ClassMap) -> None:
        self._batches = batches
        self._category_of = classes.category_of
        self._rows: list[tuple[Any, ...]] = []
        self._at = 0
        self._next_batch()

    def _next_batch(self) -> None:
        batch = next(self._batches, None)
        self._rows = [] if batch is None else list(zip(*(batch.column(c).to_pylist() for c in _BOX_COLUMNS)))
        self._at = 0

    def take(self, uri: str, frame_index: int) -> tuple[Box, ...]:
        kept = []
        while self._rows:
            row = self._rows[self._at]
            if row[0] != uri or row[1] != frame_index:
                break
            _, _, class_id, score, x1, y1, x2, y2 = row
            kept.append(Box(self._category_of[class_id], score, x1, y1, x2, y2))
            self._at += 1
            if self._at == len(self._rows):
                self._next_batch()
        return tuple(kept)

    def finish(self) -> None:
        """Every box must have found its frame: a leftover means the two streams disagreed on order."""
        if self._rows:
            uri, frame_index = self._rows[self._at][:2]
            raise RuntimeError(f"boxes of {uri} frame {frame_index} came after their frame; the export is incomplete")


def _connect(folder: str, memory_limit: str, out: Location) -> duckdb.DuckDBPyConnection:
    """A DuckDB database on disk in ``folder``: its tables and spills stay out of memory."""
    db = duckdb.connect(
        posixpath.join(folder, "export.duckdb"),
        config={
            "memory_limit": memory_limit,
            "temp_directory": posixpath.join(folder, "spill"),
            "preserve_insertion_order": False,
            # Never fetch extensions (httpfs for s3://): object stores go through the registered fsspec filesystem.
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        },
    )
    db.execute("set enable_progress_bar = false")
    if not out.is_local:
        db.register_filesystem(out.fs)
    return db


def _exists(where: Location) -> bool:
    try:
        return retrying(lambda: where.fs.exists(where.path))
    except OSError as exc:
        raise UsageError(f"cannot read {where.uri}: {one_line(exc, keep='first')}") from None


def _find(folder: Location) -> list[str]:
    """Every file under ``folder`` (none when it does not exist), in one recursive listing."""
    if not _exists(folder):
        return []
    try:
        return retrying(lambda: folder.fs.find(folder.path))
    except OSError as exc:
        raise UsageError(f"cannot read {folder.uri}: {one_line(exc, keep='first')}") from None


def _manifest(where: Location) -> RunManifest:
    try:
        return RunManifest.model_validate_json(where.read_bytes())
    except (OSError, ValidationError) as exc:
        raise UsageError(f"cannot read run manifest {where.uri}: {one_line(exc, keep='first')}") from None


def open_output(config: ExportConfig, **options: Any) -> OutputReader:
    """The reader of ``config.output``; ``UsageError`` (one line) when it cannot be exported."""
    return OutputReader(config, **options)
