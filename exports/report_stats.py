"""The report's numbers, computed by DuckDB over the rows ``exports.committed`` chooses: committed shards only,
the newest row of each frame across runs (or one run's rows).

Every aggregation runs inside DuckDB, which streams the Parquet files and keeps its working tables in a scratch
database that it spills to past its memory limit: Python only ever holds results of bounded size (a row per
class or bin, capped lists, the sampled thumbnails' boxes), however many frames the output holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.committed_files import sql_literal
from exports.committed import DETECTIONS, FRAMES, CommittedRows
from schemas.tables import STATUS_ERROR, STATUS_OK, error_kind

SCORE_BINS = 20
"""Score histogram: bins of 0.05 from 0 to 1 (a score of exactly 1 falls in the last)."""
COUNT_BINS = 25
"""Boxes-per-frame histogram: at most this many bins; one per count while counts stay below it."""
MAX_FAILED = 50
MAX_VIDEOS = 10
MAX_BOXES_DRAWN = 50
"""Boxes drawn per thumbnail at most, the highest scores first: more would hide the picture."""


@dataclass(frozen=True)
class Counts:
    frames: int
    ok: int
    error: int
    detections: int
    error_kinds: list[tuple[str, int]]
    """``stage`` of the error messages (``decode``, ``read``) and frames per stage, most frequent first."""


@dataclass(frozen=True)
class FailedFrame:
    source_uri: str
    frame_index: int
    run_id: str
    error: str


@dataclass(frozen=True)
class SampledFrame:
    """A frame chosen for a thumbnail, with its boxes (at most ``MAX_BOXES_DRAWN``, best first)."""

    source_uri: str
    frame_index: int
    timestamp_s: float | None
    width: int
    height: int
    num_detections: int
    boxes: list[tuple[str, float, float, float, float, float]]
    """(class name, score, x1, y1, x2, y2) in pixels of the original frame."""


@dataclass(frozen=True)
class Stats:
    counts: Counts
    frames_by_run: dict[str, int]
    """Reported frames per run: with several runs, how many of each run's rows are the newest."""
    classes: list[tuple[str, int]]
    """Detections per class, most first."""
    score_bins: list[int]
    """``SCORE_BINS`` counts of detections by score."""
    boxes_per_frame: list[tuple[str, int]]
    """(label, ``ok`` frames) per bin of the number of boxes a frame has: ``"3"`` or ``"20-39"``."""
    failed: list[FailedFrame]
    """The first ``MAX_FAILED`` error rows by URI; ``counts.error`` says how many there are."""
    videos: list[tuple[str, int, int]]
    """(URI, frames, error frames) of the ``MAX_VIDEOS`` videos with the most sampled frames."""


class OutputStats:
    """The report's queries over one output's committed rows (``CommittedRows``, owned by the caller)."""

    def __init__(self, committed: CommittedRows) -> None:
        self.committed = committed
        committed.function("error_kind", error_kind)

    def scalar(self, query: str) -> int:
        return int(self.committed.scalar(query) or 0)

    def stats(self) -> Stats:
        """Every aggregate of the page; each one query, each result small."""
        ok, error = sql_literal(STATUS_OK), sql_literal(STATUS_ERROR)
        classes = self.committed.rows(f"select class_name, count(*) n from {DETECTIONS} group by 1 order by n desc, 1")
        counts = Counts(
            frames=self.scalar(f"select count(*) from {FRAMES}"),
            ok=self.scalar(f"select count(*) from {FRAMES} where status = {ok}"),
            error=self.scalar(f"select count(*) from {FRAMES} where status = {error}"),
            detections=sum(n for _, n in classes),
            error_kinds=[
                (str(kind), int(n))
                for kind, n in self.committed.rows(
                    f"""select error_kind(error) kind, count(*) n from {FRAMES} where status = {error}
                    group by kind order by n desc, kind"""
                )
            ],
        )
        scores = dict(
            self.committed.rows(
                f"select least(floor(score * {SCORE_BINS}), {SCORE_BINS - 1})::int b, count(*) from {DETECTIONS} "
                "group by b"
            )
        )
        return Stats(
            counts=counts,
            frames_by_run=dict(
                self.committed.rows(f"select run_id, count(*) from {FRAMES} group by run_id order by run_id")
            ),
            classes=classes,
            score_bins=[int(scores.get(b, 0)) for b in range(SCORE_BINS)],
            boxes_per_frame=self._boxes_per_frame(),
            failed=[
                FailedFrame(*row)
                for row in self.committed.rows(
                    f"""select source_uri, frame_index, run_id, coalesce(error, '') from {FRAMES}
                    where status = {error} order by source_uri, frame_index limit {MAX_FAILED}"""
                )
            ],
            videos=self.committed.rows(
                f"""select source_uri, count(*) n, count(*) filter (where status = {error}) from {FRAMES}
                where timestamp_s is not null group by source_uri order by n desc, source_uri limit {MAX_VIDEOS}"""
            ),
        )

    def _boxes_per_frame(self) -> list[tuple[str, int]]:
        ok = f"from {FRAMES} where status = {sql_literal(STATUS_OK)}"
        most = self.scalar(f"select max(num_detections) {ok}")
        width = max(1, -(-(most + 1) // COUNT_BINS))
        counts = dict(self.committed.rows(f"select num_detections // {width} b, count(*) {ok} group by b"))
        label = (lambda b: str(b)) if width == 1 else (lambda b: f"{b * width}-{b * width + width - 1}")
        return [(label(b), int(counts.get(b, 0))) for b in range(most // width + 1)]

    def sample(self, n: int) -> list[SampledFrame]:
        """``n`` ``ok`` frames chosen deterministically: frames with boxes first, then by the MD5 of URI and frame
        index (stable across DuckDB versions, unlike its ``hash``), so the same output gives the same grid and
        one new input rarely changes it. Listed by URI and frame index."""
        if n <= 0:
            return []
        self.committed.sql(
            f"""create or replace temp table sampled as
            select run_id, source_uri, frame_index, timestamp_s, width, height, num_detections from {FRAMES}
            where status = {sql_literal(STATUS_OK)}
            order by num_detections = 0, md5(source_uri || '#' || frame_index::varchar) limit {int(n)}"""
        )
        boxes: dict[tuple[str, int], list] = {}
        for uri, index, *box in self.committed.rows(
            f"""select d.source_uri, d.frame_index, d.class_name, d.score, d.x1, d.y1, d.x2, d.y2
            from {DETECTIONS} d semi join sampled s using (run_id, source_uri, frame_index)
            qualify row_number() over (partition by d.source_uri, d.frame_index order by d.score desc)
                <= {MAX_BOXES_DRAWN}
            order by d.source_uri, d.frame_index, d.score desc"""
        ):
            boxes.setdefault((uri, index), []).append(tuple(box))
        return [
            SampledFrame(uri, index, ts, width, height, count, boxes.get((uri, index), []))
            for uri, index, ts, width, height, count in self.committed.rows(
                "select source_uri, frame_index, timestamp_s, width, height, num_detections from sampled "
                "order by source_uri, frame_index"
            )
        ]
