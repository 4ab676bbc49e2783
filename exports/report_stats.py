"""The report's numbers, computed by DuckDB over a job's output: committed rows only, the newest row per frame.

A shard's rows count once its marker ``_runs/<run_id>/shards/<shard>.json`` exists (the job writes it last), so
rows of a shard a killed attempt left behind never reach the report. Across runs (``--incremental``, reruns)
a frame is reported once, from the newest run that committed it (run ids sort by their start time), unless
one run is asked for.

Every aggregation runs inside DuckDB, which streams the Parquet files and keeps its working tables in a scratch
database file that it spills to past its memory limit: Python only ever holds results of bounded size (a row
per class or bin, capped lists, the sampled thumbnails' boxes), however many frames the output holds. On an
object store DuckDB reads through the job's own fsspec filesystem (``register_filesystem``): its ``httpfs``
extension is neither needed nor downloaded.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from jobs.commit import error_kind
from jobs.run_store import RunStore
from jobs.storage import Location
from schemas.manifest import RunManifest
from schemas.tables import DETECTIONS_SCHEMA, STATUS_ERROR, STATUS_OK

SCORE_BINS = 20
"""Score histogram: bins of 0.05 from 0 to 1 (a score of exactly 1 falls in the last)."""
COUNT_BINS = 25
"""Boxes-per-frame histogram: at most this many bins; one per count while counts stay below it."""
MAX_FAILED = 50
MAX_VIDEOS = 10
MAX_BOXES_DRAWN = 50
"""Boxes drawn per thumbnail at most, the highest scores first: more would hide the picture."""


class BadOutput(Exception):
    """The folder is not a job output the report can read (no manifests, no committed rows, unreadable)."""


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


class OutputTables:
    """A DuckDB session over one output (a context manager), with the report's rows: ``report_frames`` (a table
    of the chosen frame rows) and ``report_detections`` (a view of their boxes).

    ``scratch`` is a folder for DuckDB's database file and spill files, removed by the caller. ``progress``:
    DuckDB's own progress bar for long queries (on a terminal).
    """

    def __init__(self, out: Location, scratch: str, run_id: str | None = None, progress: bool = False) -> None:
        self.out = out
        self.manifests = _manifests(out, run_id)
        self.con = duckdb.connect(posixpath.join(scratch, "report.duckdb"))
        try:
            self.con.execute("set autoinstall_known_extensions = false; set autoload_known_extensions = false")
            self.con.execute(f"set temp_directory = {_literal(posixpath.join(scratch, 'spill'))}")
            self.con.execute(f"set enable_progress_bar = {'true' if progress else 'false'}")
            self.con.create_function("error_kind", error_kind, [duckdb.sqltype("VARCHAR")], duckdb.sqltype("VARCHAR"))
            if not out.is_local:
                self.con.register_filesystem(out.fs)
            self._base = out.path if out.is_local else out.uri
            self._select_frames(run_id)
            self._select_detections()
        except BaseException:
            self.con.close()
            raise

    def __enter__(self) -> OutputTables:
        return self

    def __exit__(self, *_: object) -> None:
        self.con.close()

    def _select_frames(self, run_id: str | None) -> None:
        self.con.register("committed_shards", _committed_shards(self.out))
        only_run = f"where f.run_id = {_literal(run_id)}" if run_id else ""
        try:
            self.con.execute(
                f"""create table report_frames as
                select f.run_id, f.source_uri, f.frame_index, f.timestamp_s, f.width, f.height, f.num_detections,
                       f.status, f.error
                from {self._parquet("frames")} f semi join committed_shards c using (run_id, shard_id)
                {only_run}
                qualify row_number() over (partition by f.source_uri, f.frame_index order by f.run_id desc) = 1"""
            )
        except duckdb.IOException as exc:
            if "No files found" not in str(exc):
                raise
            raise BadOutput(f"{self.out.uri} has no frames table: no shard written yet") from None
        if self.scalar("select count(*) from report_frames") == 0:
            which = f"run {run_id}" if run_id else self.out.uri
            raise BadOutput(f"{which} has no committed frames (the run wrote no shard yet)")

    def _select_detections(self) -> None:
        try:
            source = self._parquet("detections")
            self.con.execute(f"select 1 from {source} limit 0")
        except duckdb.IOException as exc:
            if "No files found" not in str(exc):
                raise
            self.con.register("no_detections", DETECTIONS_SCHEMA.empty_table())
            source = "no_detections"
        self.con.execute(
            f"""create view report_detections as
            select d.class_name, d.score, d.x1, d.y1, d.x2, d.y2, d.run_id, d.source_uri, d.frame_index
            from {source} d semi join report_frames f using (run_id, source_uri, frame_index)"""
        )

    def _parquet(self, table: str) -> str:
        pattern = posixpath.join(self._base, table, "**", "*.parquet")
        return f"read_parquet({_literal(pattern)}, hive_partitioning = true)"

    def scalar(self, query: str) -> int:
        row = self.con.execute(query).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def rows(self, query: str) -> list[tuple]:
        return self.con.execute(query).fetchall()

    def stats(self) -> Stats:
        """Every aggregate of the page; each one query, each result small."""
        ok, error = _literal(STATUS_OK), _literal(STATUS_ERROR)
        frames, detections = "report_frames", "report_detections"
        classes = self.rows(f"select class_name, count(*) n from {detections} group by 1 order by n desc, 1")
        counts = Counts(
            frames=self.scalar(f"select count(*) from {frames}"),
            ok=self.scalar(f"select count(*) from {frames} where status = {ok}"),
            error=self.scalar(f"select count(*) from {frames} where status = {error}"),
            detections=sum(n for _, n in classes),
            error_kinds=[
                (str(kind), int(n))
                for kind, n in self.rows(
                    f"""select error_kind(error) kind, count(*) n from {frames} where status = {error}
                    group by kind order by n desc, kind"""
                )
            ],
        )
        scores = dict(
            self.rows(
                f"select least(floor(score * {SCORE_BINS}), {SCORE_BINS - 1})::int b, count(*) from {detections} "
                "group by b"
            )
        )
        return Stats(
            counts=counts,
            frames_by_run=dict(self.rows(f"select run_id, count(*) from {frames} group by run_id order by run_id")),
            classes=classes,
            score_bins=[int(scores.get(b, 0)) for b in range(SCORE_BINS)],
            boxes_per_frame=self._boxes_per_frame(),
            failed=[
                FailedFrame(*row)
                for row in self.rows(
                    f"""select source_uri, frame_index, run_id, coalesce(error, '') from {frames}
                    where status = {error} order by source_uri, frame_index limit {MAX_FAILED}"""
                )
            ],
            videos=self.rows(
                f"""select source_uri, count(*) n, count(*) filter (where status = {error}) from {frames}
                where timestamp_s is not null group by source_uri order by n desc, source_uri limit {MAX_VIDEOS}"""
            ),
        )

    def _boxes_per_frame(self) -> list[tuple[str, int]]:
        ok = f"from report_frames where status = {_literal(STATUS_OK)}"
        most = self.scalar(f"select max(num_detections) {ok}")
        width = max(1, -(-(most + 1) // COUNT_BINS))
        counts = dict(self.rows(f"select num_detections // {width} b, count(*) {ok} group by b"))
        label = (lambda b: str(b)) if width == 1 else (lambda b: f"{b * width}-{b * width + width - 1}")
        return [(label(b), int(counts.get(b, 0))) for b in range(most // width + 1)]

    def sample(self, n: int) -> list[SampledFrame]:
        """``n`` ``ok`` frames chosen deterministically: frames with boxes first, then by the MD5 of URI and frame
        index (stable across DuckDB versions, unlike its ``hash``), so the same output gives the same grid and
        one new input rarely changes it. Listed by URI and frame index."""
        if n <= 0:
            return []
        self.con.execute(
            f"""create or replace temp table sampled as
            select run_id, source_uri, frame_index, timestamp_s, width, height, num_detections from report_frames
            where status = {_literal(STATUS_OK)}
            order by num_detections = 0, md5(source_uri || '#' || frame_index::varchar) limit {int(n)}"""
        )
        boxes: dict[tuple[str, int], list] = {}
        for uri, index, *box in self.rows(
            f"""select d.source_uri, d.frame_index, d.class_name, d.score, d.x1, d.y1, d.x2, d.y2
            from report_detections d semi join sampled s using (run_id, source_uri, frame_index)
            qualify row_number() over (partition by d.source_uri, d.frame_index order by d.score desc)
                <= {MAX_BOXES_DRAWN}
            order by d.source_uri, d.frame_index, d.score desc"""
        ):
            boxes.setdefault((uri, index), []).append(tuple(box))
        return [
            SampledFrame(uri, index, ts, width, height, count, boxes.get((uri, index), []))
            for uri, index, ts, width, height, count in self.rows(
                "select source_uri, frame_index, timestamp_s, width, height, num_detections from sampled "
                "order by source_uri, frame_index"
            )
        ]


def _manifests(out: Location, run_id: str | None) -> list[RunManifest]:
    """The output's run manifests (all, or the named run's): none means this is not a job output."""
    try:
        manifests = RunStore(out).manifests()
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise BadOutput(f"cannot read the run manifests under {out.uri}/_runs: {str(exc).splitlines()[0]}") from None
    if not manifests:
        raise BadOutput(f"{out.uri} is not a job output: no run manifest (_runs/*.json)")
    if run_id is None:
        return manifests
    chosen = [m for m in manifests if m.run_id == run_id]
    if not chosen:
        raise BadOutput(f"no run {run_id!r} in {out.uri} (runs: {', '.join(m.run_id for m in manifests)})")
    return chosen


def _committed_shards(out: Location) -> pa.Table:
    """(run_id, shard_id) of every commit marker, from one listing: markers are not read."""
    paths = out.fs.glob(out.child("_runs", "*", "shards", "*.json").path)
    keys = [(posixpath.basename(posixpath.dirname(posixpath.dirname(p))), posixpath.basename(p)[:-5]) for p in paths]
    return pa.table(
        {"run_id": [k[0] for k in keys], "shard_id": [k[1] for k in keys]},
        schema=pa.schema([("run_id", pa.string()), ("shard_id", pa.string())]),
    )


def _literal(value: str) -> str:
    """``value`` as a SQL string literal (paths and run ids may hold quotes)."""
    return "'" + value.replace("'", "''") + "'"
