"""The output path's exactly-once, without Ray: result blocks built by hand in the model stage's layout
(``RESULTS_SCHEMA``) go through the real write stage (``write_results``, staging to a temporary folder), its
receipts to the real ``ShardCollector``, and complete shards to the real ``ShardCommitter.publish``, called in
this process where the job runs it as a Ray task.

Ray may hand the write stage a block again (a retried task), rows of one item in any order, and rows of many
shards in one block; every frame must still be written exactly once, each shard committed once, when it is
whole, and nothing of a shard may appear in the tables before it is."""

from __future__ import annotations

import io
import math
import random
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from common.storage import location
from jobs.commit.collector import ShardCollector
from jobs.commit.committer import IncompleteShardError, ShardCommitter
from jobs.pipeline import decode_stage
from jobs.pipeline.decode_stage import Decoding, decode_batch
from jobs.pipeline.write_stage import write_results
from schemas.manifest import ShardCommit
from schemas.tables import RESULTS_SCHEMA, STATUS_ERROR, STATUS_NONE, STATUS_OK
from tests.support.videos import encode_h264, photo_frames
from workers.letterbox import LetterboxSpec
from workers.video import Sampling

RUN_ID = "20250102T030405Z-c011ec"
CLASSES = ("person", "bicycle", "car")
PARTITION = "run_date=2025-01-02/source=cam"


# --- building result blocks ------------------------------------------------------------------------------------


def _uri(item: int, video: bool = False) -> str:
    return f"file:///data/cam/{'clip' if video else 'photo'}-{item:03d}.{'mp4' if video else 'jpg'}"


def _boxes(item: int, frame: int, status: str) -> list[dict]:
    """A distinct, deterministic set of boxes per frame (0-2 of them), none for error and placeholder rows."""
    if status != STATUS_OK:
        return []
    return [
        {
            "class_id": (item + frame + k) % len(CLASSES),
            "score": 0.5 + 0.1 * k,
            "x1": float(frame),
            "y1": float(k),
            "x2": frame + 10.0,
            "y2": k + 10.0,
        }
        for k in range((item + frame) % 3)
    ]


def _row(
    shard: str,
    item: int,
    frame: int = 0,
    *,
    item_rows: int = 1,
    status: str = STATUS_OK,
    video: bool = False,
    partition: str = PARTITION,
) -> dict:
    """One row as the model stage gives it. ``item_rows``: nonzero on the item's last row only."""
    ok = status == STATUS_OK
    return {
        "shard_id": shard,
        "partition": partition,
        "source_uri": _uri(item, video),
        "item": item,
        "item_rows": item_rows,
        "frame_index": frame,
        "timestamp_s": frame / 10 if video and status != STATUS_NONE else math.nan,
        "width": 640 if ok else None,
        "height": 480 if ok else None,
        "status": status,
        "error": "decode: broken file" if status == STATUS_ERROR else None,
        "boxes": _boxes(item, frame, status),
    }


def _image(shard: str, item: int, status: str = STATUS_OK, partition: str = PARTITION) -> dict:
    return _row(shard, item, status=status, partition=partition)


def _video(shard: str, item: int, frames: list[int], partition: str = PARTITION) -> list[dict]:
    """The rows of a video range, in frame order; the last one says how many there are."""
    return [
        _row(shard, item, f, item_rows=len(frames) if i == len(frames) - 1 else 0, video=True, partition=partition)
        for i, f in enumerate(frames)
    ]


def _placeholder(shard: str, item: int) -> dict:
    """What a video range that held no frame gives (``jobs/pipeline/decode_stage.py``): one ``none`` row at frame 0."""
    return _row(shard, item, 0, item_rows=1, status=STATUS_NONE, video=True)


def _block(*rows: dict | list[dict]) -> pa.Table:
    flat = [r for part in rows for r in (part if isinstance(part, list) else [part])]
    return pa.Table.from_pylist(flat, schema=RESULTS_SCHEMA)


# --- the collector under test, its committer and its progress callback ----------------------------------------


class _RecordingCommitter(ShardCommitter):
    """The real committer, remembering which shards it was asked to commit, in order."""

    def __init__(self, out: Path) -> None:
        super().__init__(location(str(out)), RUN_ID, CLASSES)
        self.commits: list[str] = []

    def commit(self, shard_id: str, results: pa.Table, items: int) -> ShardCommit:
        self.commits.append(shard_id)
        return super().commit(shard_id, results, items)


class _InlinePublisher:
    """``jobs.publish.Publisher``'s contract with the publishing done at once, in this process."""

    def __init__(self, committer: ShardCommitter) -> None:
        self.committer = committer
        self._ended: list[tuple[str, str | None]] = []

    def submit(self, shard_id: str, files: list[str], items: int) -> None:
        try:
            self.committer.publish(shard_id, files, items)
            self._ended.append((shard_id, None))
        except Exception as exc:  # as a failed Ray task is reported
            self._ended.append((shard_id, f"{type(exc).__name__}: {exc}"))

    def finished(self, wait: bool = False) -> list[tuple[str, str | None]]:
        ended, self._ended = self._ended, []
        return ended


class _Progress:
    """``on_rows``: totals of what the collector reported."""

    def __init__(self) -> None:
        self.frames = 0
        self.errors = 0

    def __call__(self, frames: int, errors: int) -> None:
        self.frames += frames
        self.errors += errors


class _Setup:
    def __init__(self, out: Path, items: dict[str, int]) -> None:
        self.out = out
        self.committer = _RecordingCommitter(out)
        self.progress = _Progress()
        self.collector = ShardCollector(_InlinePublisher(self.committer), items, self.progress)

    def add(self, *rows: dict | list[dict]) -> None:
        self.collector.add(write_results(_block(*rows), committer=self.committer))

    def marker(self, shard: str) -> ShardCommit | None:
        path = Path(self.committer.markers.marker(shard, self.committer.epoch).path)
        return ShardCommit.model_validate_json(path.read_bytes()) if path.exists() else None

    def markers(self) -> set[str]:
        return {p.stem for p in self.out.glob(f"_runs/{RUN_ID}/shards/*.json")}

    def frames(self) -> list[dict]:
        return _table(self.out, "frames")

    def detections(self) -> list[dict]:
        return _table(self.out, "detections")


def _table(out: Path, name: str) -> list[dict]:
    if not (out / name).exists():
        return []
    return ds.dataset(out / name, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture
def setup(tmp_path: Path):
    return lambda items: _Setup(tmp_path / "out", items)


def _keys(rows: list[dict]) -> list[tuple[str, int]]:
    return sorted((r["source_uri"], r["frame_index"]) for r in rows)


def _box_keys(rows: list[dict]) -> list[tuple]:
    return sorted(tuple(r[k] for k in ("source_uri", "frame_index", "class_id", "x1", "y1")) for r in rows)


def _expected_boxes(rows: list[dict]) -> list[tuple]:
    return sorted(
        (r["source_uri"], r["frame_index"], b["class_id"], b["x1"], b["y1"])
        for r in rows
        if r["status"] == STATUS_OK
        for b in r["boxes"]
    )


# --- re-delivered rows ---------------------------------------------------------------------------------------


def test_a_block_delivered_twice_is_written_once(setup):
    s = setup({"00000": 3})
    first = [_image("00000", 0), _image("00000", 1, status=STATUS_ERROR)]
    s.add(first)
    s.add(first)  # a retried task hands the same block over again
    assert s.markers() == set() and s.committer.commits == []
    assert (s.progress.frames, s.progress.errors) == (2, 1)
    last = _image("00000", 2)
    s.add(last)

    assert s.committer.commits == ["00000"]
    delivered = first + [last]
    frames = s.frames()
    assert _keys(frames) == _keys(delivered) and len(set(_keys(frames))) == 3
    assert _box_keys(s.detections()) == _expected_boxes(delivered)
    marker = s.marker("00000")
    assert (marker.items, marker.frames, marker.ok, marker.errors) == (3, 3, 2, 1)
    assert marker.detections == len(_expected_boxes(delivered)) > 0
    assert marker.error_kinds == {"decode": 1}
    assert (s.progress.frames, s.progress.errors) == (3, 1)

    # What a reader of the output sees, with the partition columns from the folder names.
    frames_glob = f"read_parquet('{s.out}/frames/**/*.parquet', hive_partitioning=true)"
    rows = duckdb.sql(
        f"select source_uri, frame_index, run_date::varchar, source, count(*) from {frames_glob} group by all"
    ).fetchall()
    assert sorted(rows) == sorted((u, f, "2025-01-02", "cam", 1) for u, f in _keys(delivered))
    boxes = duckdb.sql(
        f"select count(*) from read_parquet('{s.out}/detections/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert boxes == [(marker.detections,)]


def test_a_partial_overlap_keeps_each_frame_once(setup):
    """A retried video range re-delivers the frames it had already given, then the rest."""
    s = setup({"00000": 2})
    clip = _video("00000", 0, [0, 3, 6, 9, 12, 15])
    photo = _image("00000", 1)
    s.add(clip[:4], photo)
    s.add(clip[2:])  # frames 6 and 9 again, then 12 and 15 (the last row, item_rows=6)

    assert s.committer.commits == ["00000"]
    frames = s.frames()
    assert _keys(frames) == _keys(clip + [photo])
    assert [r["frame_index"] for r in frames if r["source_uri"] == _uri(0, video=True)] == [0, 3, 6, 9, 12, 15]
    assert _box_keys(s.detections()) == _expected_boxes(clip + [photo])
    marker = s.marker("00000")
    assert (marker.frames, marker.ok, marker.detections) == (7, 7, len(_expected_boxes(clip + [photo])))
    assert s.progress.frames == 7


def test_redelivery_after_the_commit_is_ignored(setup):
    s = setup({"00000": 2, "00001": 1})
    done = [_image("00000", 0), _video("00000", 1, [0, 1, 2])]
    s.add(*done)
    assert s.committer.commits == ["00000"]
    files = sorted(s.out.rglob("*.parquet")) + [Path(s.committer.markers.marker("00000", 0).path)]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    progress = (s.progress.frames, s.progress.errors)

    s.add(*done)  # the whole shard again: complete on its own, yet not to be committed twice
    s.add(done[1], _image("00001", 2))  # old rows mixed with a new shard's
    assert s.committer.commits == ["00000", "00001"]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files} == before
    assert (s.progress.frames, s.progress.errors) == (progress[0] + 1, progress[1])
    assert s.collector.uncommitted_counts() == (0, 0)
    assert _keys(s.frames()) == _keys([done[0], *done[1], _image("00001", 2)])


# --- staging and publishing ----------------------------------------------------------------------------------


def _staged(s: _Setup, shard: str) -> set[str]:
    return {p.name for p in s.out.glob(f"_runs/{RUN_ID}/staging/{shard}/*")}


def test_rows_are_staged_outside_the_tables_until_their_shard_is_published(setup):
    s = setup({"00000": 3})
    first = _block(_image("00000", 0), _image("00000", 1))
    receipts = write_results(first, committer=s.committer)
    again = write_results(first, committer=s.committer)  # the same block redone: the same name, overwritten
    assert receipts.column("file").to_pylist() == again.column("file").to_pylist()
    s.collector.add(receipts)
    assert _staged(s, "00000") == set(receipts.column("file").to_pylist())
    assert not (s.out / "frames").exists() and not (s.out / "detections").exists()
    # Readers of the tables see nothing of the shard: not even a glob over the whole output finds a row.
    assert duckdb.sql(f"select count(*) from glob('{s.out}/**/*.parquet')").fetchall() == [(0,)]

    s.add(_image("00000", 2))
    assert s.committer.commits == ["00000"]
    assert _staged(s, "00000") == set()
    assert len(s.frames()) == 3


def test_publishing_a_shard_short_of_rows_writes_nothing(setup):
    """The driver's bookkeeping is checked, not trusted: a shard handed over without all of its rows is refused."""
    s = setup({"00000": 2})
    clip = _video("00000", 0, [0, 1, 2])
    staged = write_results(_block(clip[0], clip[2], _image("00000", 1)), committer=s.committer)
    with pytest.raises(IncompleteShardError, match="1 of them short of rows"):
        s.committer.publish("00000", staged.column("file").to_pylist(), items=2)
    with pytest.raises(IncompleteShardError, match="cover 2 of 3 work items"):
        s.committer.publish("00000", staged.column("file").to_pylist(), items=3)
    assert s.markers() == set() and not (s.out / "frames").exists()


def test_publishing_again_after_the_commit_returns_that_commit(setup):
    """Ray redoes a publish task whose worker died, possibly after it committed and removed the staged rows."""
    s = setup({"00000": 1})
    files = write_results(_block(_image("00000", 0)), committer=s.committer).column("file").to_pylist()
    first = s.committer.publish("00000", files, items=1)
    assert _staged(s, "00000") == set()
    assert s.committer.publish("00000", files, items=1) == first
    assert s.committer.commits == ["00000"]


def test_a_failed_publishing_leaves_the_shard_uncommitted_and_counted(setup):
    s = setup({"00000": 1, "00001": 1})
    s.committer.commit = _refuse  # type: ignore[method-assign]
    s.add(_image("00000", 0, status=STATUS_ERROR), _image("00001", 1))
    assert set(s.collector.failures) == {"00000", "00001"}
    assert "storage refused" in s.collector.failures["00000"]
    assert s.collector.uncommitted_counts() == (2, 1)
    assert s.markers() == set()


def _refuse(shard_id: str, results: pa.Table, items: int) -> ShardCommit:
    raise PermissionError(f"storage refused shard {shard_id}")


# --- order, empty items, several shards --------------------------------------------------------------------


def test_rows_arriving_last_row_first_commit_only_when_all_arrived(setup):
    s = setup({"00000": 2})
    clip = _video("00000", 0, [0, 1, 2, 3, 4])
    photo = _image("00000", 1)
    s.add(clip[4], photo)  # every item's last row (so every count is known), but four frames missing
    s.add(clip[3], clip[2])
    assert s.markers() == set() and s.committer.commits == []
    assert not (s.out / "frames").exists()
    s.add(clip[1])
    assert s.markers() == set()
    s.add(clip[0])

    assert s.committer.commits == ["00000"]
    assert _keys(s.frames()) == _keys(clip + [photo])
    assert s.marker("00000").frames == 6
    assert s.progress.frames == 6


def test_an_item_that_gave_no_frame_completes_its_shard_unwritten(setup):
    """A video range past the real end gives one ``none`` placeholder row (item_rows=1): the shard commits,
    the placeholder is neither written nor counted."""
    s = setup({"00000": 2, "00001": 1})
    photo = _image("00000", 0)
    s.add(_placeholder("00000", 1), _placeholder("00001", 2))
    assert s.committer.commits == ["00001"]  # a shard of nothing but an empty range is complete at once
    s.add(photo)

    assert s.committer.commits == ["00001", "00000"]
    assert _keys(s.frames()) == _keys([photo])
    assert all(r["status"] != STATUS_NONE for r in s.frames())
    full, empty = s.marker("00000"), s.marker("00001")
    assert (full.items, full.frames, full.ok) == (2, 1, 1)
    assert (empty.items, empty.frames, empty.detections, empty.files) == (1, 0, 0, [])
    assert (s.progress.frames, s.progress.errors) == (1, 0)


def test_shards_interleaved_over_blocks_commit_each_when_whole(setup):
    other = "run_date=2025-01-02/source=dock"
    s = setup({"00000": 2, "00001": 3, "00002": 1})
    clip = _video("00001", 3, [0, 5, 10])
    s.add(_image("00000", 0), _image("00001", 2), _image("00002", 5))
    assert s.committer.commits == ["00002"] and s.markers() == {"00002"}
    s.add(clip[:2], _image("00000", 1))
    assert s.committer.commits == ["00002", "00000"] and s.markers() == {"00000", "00002"}
    s.add(clip[2])
    assert s.markers() == {"00000", "00002"}  # item 4 of shard 00001 still missing
    s.add(_image("00001", 4, partition=other))
    assert s.committer.commits == ["00002", "00000", "00001"]

    frames = s.frames()
    by_shard = Counter(r["shard_id"] for r in frames)
    assert by_shard == {"00000": 2, "00001": 5, "00002": 1}
    assert len(set(_keys(frames))) == len(frames) == 8
    spread = s.marker("00001")
    assert (spread.items, spread.frames) == (3, 5)
    assert sorted(spread.files) == sorted(
        f"{table}/{p}/part-{RUN_ID}-00001.parquet" for table in ("frames", "detections") for p in (PARTITION, other)
    )
    assert {r["source"] for r in frames if r["shard_id"] == "00001"} == {"cam", "dock"}


def test_uncommitted_counts_are_the_distinct_rows_of_unfinished_shards(setup):
    s = setup({"00000": 4, "00001": 1})
    assert s.collector.uncommitted_counts() == (0, 0)
    photo = _image("00000", 0)
    s.add(photo, _image("00000", 1, status=STATUS_ERROR), photo, _image("00001", 9))  # twice in one block
    s.add(photo, _placeholder("00000", 2))
    assert s.committer.commits == ["00001"]
    assert s.collector.uncommitted_counts() == (2, 1)  # not the committed shard, the copies nor the placeholder
    assert (s.progress.frames, s.progress.errors) == (3, 1)
    s.add(_image("00000", 3))
    assert s.committer.commits == ["00001", "00000"]
    assert s.collector.uncommitted_counts() == (0, 0)


# --- everything at once, in random orders ------------------------------------------------------------------


def _random_plan(rng: random.Random) -> tuple[dict[str, int], dict[str, list[dict]]]:
    """Four shards of images (some error rows), video ranges (some empty) over two partitions."""
    items: dict[str, int] = {}
    rows: dict[str, list[dict]] = {}
    item = 0
    for s in range(4):
        shard = f"{s:05d}"
        rows[shard] = []
        for _ in range(rng.randint(1, 4)):
            partition = rng.choice([PARTITION, "run_date=2025-01-02/source=dock"])
            kind = rng.choice(["image", "image", "error", "video", "empty"])
            if kind == "video":
                start = rng.randrange(0, 20)
                rows[shard] += _video(shard, item, list(range(start, start + rng.randint(1, 7))), partition)
            elif kind == "empty":
                rows[shard].append(_placeholder(shard, item))
            else:
                status = STATUS_ERROR if kind == "error" else STATUS_OK
                rows[shard].append(_image(shard, item, status=status, partition=partition))
            item += 1
        items[shard] = len({r["item"] for r in rows[shard]})
    return items, rows


@pytest.mark.parametrize("seed", range(6))
def test_any_delivery_order_with_repeats_commits_each_shard_once_when_whole(setup, seed):
    """Rows shuffled over blocks, a third of them delivered again at random later points: after every block the
    committed shards are exactly those whose every row has arrived, and progress counts each row once."""
    rng = random.Random(seed)
    items, rows = _random_plan(rng)
    everything = [r for shard_rows in rows.values() for r in shard_rows]
    stream = everything + rng.sample(everything, len(everything) // 3)
    rng.shuffle(stream)
    s = setup(items)
    arrived: set[tuple[int, int]] = set()
    i = 0
    while i < len(stream):
        block = stream[i : i + rng.randint(1, 5)]
        i += len(block)
        s.add(block)
        arrived |= {(r["item"], r["frame_index"]) for r in block}
        whole = {shard for shard, rs in rows.items() if all((r["item"], r["frame_index"]) in arrived for r in rs)}
        assert s.markers() == whole and set(s.committer.commits) == whole

    assert sorted(s.committer.commits) == sorted(rows)  # each once
    real = [r for r in everything if r["status"] != STATUS_NONE]
    frames = s.frames()
    assert _keys(frames) == _keys(real) and len(set(_keys(frames))) == len(frames)
    assert _box_keys(s.detections()) == _expected_boxes(real)
    errors = sum(r["status"] == STATUS_ERROR for r in real)
    assert (s.progress.frames, s.progress.errors) == (len(real), errors)
    markers = [s.marker(shard) for shard in rows]
    assert sum(m.frames for m in markers) == len(real) and sum(m.errors for m in markers) == errors
    assert sum(m.detections for m in markers) == len(_expected_boxes(real))
    assert [m.items for m in markers] == [items[shard] for shard in rows]


# --- with the decode stage's own rows ----------------------------------------------------------------------


class _ReadFailsHalfway(io.BytesIO):
    """A video input whose reads fail past its middle, after frames were decoded: a connection reset that outlived
    the storage retries, or a file cut short while it is read."""

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > len(self.getbuffer()) // 2:
            raise ConnectionResetError("connection reset by peer")
        return super().read(size)


def test_a_video_whose_reads_fail_midway_gives_a_shard_that_commits(setup, coco_images, tmp_path, monkeypatch):
    clip = encode_h264(tmp_path / "clip.mp4", photo_frames(coco_images, 48), fps=12).read_bytes()
    monkeypatch.setattr(decode_stage, "location", lambda uri, options=None: _Opens(clip))
    decoding = Decoding(LetterboxSpec(), Sampling(stride=4), storage_options={}, rows_per_batch=64, max_pixels=10**8)
    item = {
        "shard_id": "00000",
        "partition": PARTITION,
        "source_uri": "s3://bucket/cam/clip.mp4",
        "item": 0,
        "kind": "video",
        "frame_start": 0,
        "frame_stop": None,
        "fps": 12.0,
        "video_frames": 48,
        "expected_frames": 12,
    }
    decoded = list(decode_batch({k: np.array([v], dtype=object) for k, v in item.items()}, decoding))
    rows = [
        _row("00000", 0, int(f), item_rows=int(n), status=str(status), video=True)
        for out in decoded
        for f, n, status in zip(out["frame_index"], out["item_rows"], out["status"])
    ]
    assert 1 < len(rows) < 12 and rows[-1]["status"] == STATUS_ERROR  # the read failed midway

    s = setup({"00000": 1})
    s.add(rows)
    assert s.committer.commits == ["00000"]
    frames = s.frames()
    assert len(set(_keys(frames))) == len(frames) == len(rows)


class _Opens:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def open_input(self) -> io.BytesIO:
        return _ReadFailsHalfway(self.data)
