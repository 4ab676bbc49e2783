"""Read a job's output as a stream of ``FrameRecord`` values, in bounded memory, local or on S3.

What is read is what ``exports.committed`` chooses: committed shards only, the newest row of each frame across
runs, or only the rows of ``--run-id``. Frames and boxes come from DuckDB as two streams sorted the same way and
are merged here, so Python only ever holds a batch of frames and a batch of boxes, and no frame's boxes are
gathered into lists by SQL.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterator

import pyarrow as pa

from common.errors import UsageError
from common.storage import location
from exports.committed import DETECTIONS, FRAMES, CommittedRows
from exports.naming import frame_name, image_root
from exports.records import Box, Categories, FrameRecord, model_version
from exports.select import ClassMap, Splitter, class_map
from schemas import layout
from schemas.export_config import ExportConfig
from schemas.media import media_kind
from schemas.tables import STATUS_OK

_FRAME_COLUMNS = ("run_id", "source_uri", "frame_index", "timestamp_s", "width", "height", "status", "error")
_BOX_COLUMNS = ("source_uri", "frame_index", "class_id", "score", "x1", "y1", "x2", "y2")


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

    Use as a context manager (it owns the DuckDB session of ``CommittedRows``); iterate once."""

    def __init__(self, config: ExportConfig, *, memory_limit: str | None = None, temp_dir: str | None = None):
        self.config = config
        self.out = location(config.output, config.storage_options)
        self.splitter = Splitter(config.split)
        self.rows = CommittedRows(self.out, config.run_id, temp_dir=temp_dir, memory_limit=memory_limit)
        try:
            self.selection = self._select()
            self.class_map = self._class_map()
        except BaseException:
            self.close()
            raise
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
        self.rows.close()

    def __iter__(self) -> Iterator[FrameRecord]:
        boxes = _BoxStream(self._box_batches(), self.class_map)
        root = self.selection.root
        query = f"select * from {FRAMES} where {self._exported} order by source_uri, frame_index"
        for batch in self.rows.stream(query):
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

    def _select(self) -> Selection:
        """Counts and runs of the chosen rows, and the folder names are relative to."""
        ((frames, errors),) = self.rows.rows(
            f"""select count(*) filter (where {self._exported}), count(*) filter (where status <> '{STATUS_OK}')
                from {FRAMES}"""
        )
        runs = self.rows.rows(f"select distinct run_id from {FRAMES} where {self._exported} order by 1")
        # Names are relative to the folder of every input in the output, whatever this export selects, so the
        # same frame has the same name in every export of the output (--run-id, --errors, ... change no name).
        ((first, last),) = self.rows.rows(
            "select min(source_uri), max(source_uri) from read_parquet($files, hive_partitioning = false)",
            files=self.rows.files.of(layout.FRAMES),
        )
        return Selection(frames, errors, tuple(r for (r,) in runs), image_root(first, last))

    def _class_map(self) -> ClassMap:
        """The model's classes, the same in every run exported (else boxes of one id would mean two classes),
        and the model versions the boxes come from."""
        names: dict[tuple[str, ...], list[str]] = defaultdict(list)
        versions: dict[str, None] = {}
        named = [self.config.run_id] if self.config.run_id else sorted(self.rows.files.manifests)[-1:]
        for run_id in self.selection.runs or named:  # no row exported: the classes of the run asked for
            model = self.rows.manifest(run_id).model
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
        if not kept or not self.selection.frames:
            return iter(())
        query = f"""
            select {", ".join(_BOX_COLUMNS)} from {DETECTIONS}
            where score::double >= $min_score and class_id in ({", ".join(str(int(c)) for c in kept)})
            order by source_uri, frame_index, score desc, class_id, x1, y1, x2, y2"""
        return self.rows.stream(query, min_score=float(self.config.min_score))


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


def open_output(config: ExportConfig, **options: Any) -> OutputReader:
    """The reader of ``config.output``; ``UsageError`` (one line) when it cannot be exported."""
    return OutputReader(config, **options)
