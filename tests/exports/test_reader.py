"""The export's reader: which rows of an output it yields (committed, newest per frame, or one run's), with which
boxes and names; read back against the Parquet with DuckDB, on a real job's output and on synthetic ones."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from common.errors import UsageError
from common.storage import location
from exports.naming import frame_name, image_root, relative_name
from exports.reader import open_output
from exports.records import FrameRecord
from exports.select import Splitter, class_map, parse_classes, parse_split
from exports.target import ExportTarget
from schemas.export_config import ExportConfig
from tests.exports.conftest import HOSTILE_FILE, output_rows
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.two_runs import DATA, RUN_A, RUN_B


def read(output: str, **options: Any) -> list[FrameRecord]:
    config = ExportConfig(output=str(output), format="coco", to="/unused", **options)
    with open_output(config) as reader:
        return list(reader)


def by_name(records: list[FrameRecord]) -> dict[str, FrameRecord]:
    names = [r.name for r in records]
    assert len(set(names)) == len(names), "names must be unique"
    return {r.name: r for r in records}


# --- a real job's output ---------------------------------------------------------------------------------------


def test_every_ok_frame_of_a_real_run_once_with_exactly_its_boxes(job_output):
    records = read(job_output.out)
    ok = output_rows(job_output.out, "select source_uri, frame_index from {frames} where status = 'ok'")
    assert sorted((r.source_uri, r.frame_index) for r in records) == sorted(ok)
    assert [(r.source_uri, r.frame_index) for r in records] == sorted(ok), "sorted by URI, then frame"
    boxes = output_rows(
        job_output.out, "select source_uri, frame_index, class_id, score, x1, y1, x2, y2 from {detections}"
    )
    names = output_rows(job_output.out, "select distinct class_id, class_name from {detections}")
    with open_output(ExportConfig(output=str(job_output.out), format="coco", to="/unused")) as reader:
        assert all(reader.categories.names[class_id] == name for class_id, name in names)
    got = [(r.source_uri, r.frame_index, b.category, b.score, b.x1, b.y1, b.x2, b.y2) for r in records for b in r.boxes]
    assert sorted(got) == sorted(boxes)  # the same float32 values, as Python floats
    assert sum(1 for r in records if not r.boxes) >= 1, "the blank photo has no boxes and is still exported"
    assert {r.run_id for r in records} == {job_output.run_id}


def test_names_are_paths_below_the_inputs_folder_and_video_frames_are_numbered(job_output):
    with open_output(ExportConfig(output=str(job_output.out), format="coco", to="/unused")) as reader:
        records = by_name(list(reader))
        assert reader.selection.root == f"file://{job_output.inputs}/"
        assert reader.selection.errors == 1
    assert {"cam one/photo 1.jpg", "день 2/photo 0.jpg", "blank.png"} <= set(records)
    frames = sorted(n for n in records if n.startswith("clips/clip.mp4/"))
    assert frames == [f"clips/clip.mp4/frame_{i:06d}.jpg" for i in range(6)]
    assert records["clips/clip.mp4/frame_000003.jpg"].is_video
    assert records["clips/clip.mp4/frame_000003.jpg"].frame_index == 3
    assert HOSTILE_FILE not in records


def test_error_rows_are_exported_without_boxes_when_asked(job_output):
    records = by_name(read(job_output.out, include_errors=True))
    broken = records[HOSTILE_FILE]
    assert broken.error and broken.error.startswith("decode") and broken.boxes == ()
    assert sum(r.error is not None for r in records.values()) == 1


# --- several runs, uncommitted shards, errors (synthetic) ------------------------------------------------------


def test_the_newest_committed_row_of_each_frame(synthetic_output):
    records = by_name(read(synthetic_output.path))
    assert sorted(records) == [
        "clips/v.mp4/frame_000000.jpg",
        "clips/v.mp4/frame_000005.jpg",
        "clips/v.mp4/frame_000010.jpg",
        "photos/a.jpg",
        "photos/b.jpg",
        "photos/d.jpg",
        "photos/sub/c.jpg",
    ]
    a = records["photos/a.jpg"]
    assert (a.run_id, [(b.score, b.x1) for b in a.boxes]) == (RUN_B, [(pytest.approx(0.95), 12)])
    assert records["photos/d.jpg"].run_id == RUN_B
    # b.jpg was redone by run B's uncommitted shard: its files are on disk, but run A's row stands.
    assert records["photos/b.jpg"].run_id == RUN_A and records["photos/b.jpg"].boxes == ()


def test_files_of_an_uncommitted_shard_are_on_disk_but_never_read(synthetic_output):
    leftovers = list(Path(synthetic_output.path).glob(f"*/*/*/part-{RUN_B}-00001.parquet"))
    assert len(leftovers) == 2, "frames and detections files of the uncommitted shard"
    assert output_rows(synthetic_output.path, "select count(*) from {frames} where source_uri like '%/e.jpg'") == [(1,)]
    assert not any(r.source_uri.endswith("/e.jpg") for r in read(synthetic_output.path))


def test_run_id_exports_that_run_alone(synthetic_output):
    older = by_name(read(synthetic_output.path, run_id=RUN_A))
    assert {r.run_id for r in older.values()} == {RUN_A}
    assert len(older["photos/a.jpg"].boxes) == 2 and "photos/d.jpg" not in older
    newer = by_name(read(synthetic_output.path, run_id=RUN_B))
    assert sorted(newer) == ["photos/a.jpg", "photos/d.jpg"]


def test_video_frames_carry_their_index_and_time(synthetic_output):
    frames = [r for r in read(synthetic_output.path) if r.is_video]
    assert [(r.frame_index, r.timestamp_s, r.name) for r in frames] == [
        (i, i / 25.0, f"clips/v.mp4/frame_{i:06d}.jpg") for i in (0, 5, 10)
    ]
    assert [len(r.boxes) for r in frames] == [0, 1, 0]


def test_error_rows_are_left_out_and_counted(synthetic_output):
    config = ExportConfig(output=synthetic_output.path, format="coco", to="/unused")
    with open_output(config) as reader:
        assert (reader.selection.frames, reader.selection.errors) == (7, 1)
        assert not any(r.error for r in reader)
    bad = by_name(read(synthetic_output.path, include_errors=True))["photos/bad.jpg"]
    assert (bad.error, bad.boxes, bad.width, bad.height) == ("decode: empty file", (), 0, 0)


def test_min_score_and_classes_keep_rename_and_merge(synthetic_output):
    records = by_name(read(synthetic_output.path, run_id=RUN_A, min_score=0.5))
    assert [b.score for b in records["photos/a.jpg"].boxes] == [pytest.approx(0.9)]
    config = ExportConfig(
        output=synthetic_output.path,
        format="coco",
        to="/unused",
        run_id=RUN_A,
        classes=parse_classes("car=vehicle,person,truck=vehicle"),
    )
    with open_output(config) as reader:
        assert reader.categories.names == ("vehicle", "person")
        records = by_name(list(reader))
    assert sorted(b.category for b in records["photos/a.jpg"].boxes) == [0, 1]
    assert [b.category for b in records["photos/sub/c.jpg"].boxes] == [0]
    assert records["clips/v.mp4/frame_000005.jpg"].boxes == (), "dog was not named, so it is left out"


def test_a_score_at_the_threshold_is_kept(synthetic_output):
    records = by_name(read(synthetic_output.path, run_id=RUN_A, min_score=0.4))
    assert len(records["photos/a.jpg"].boxes) == 2  # the car's float32 0.4 is not below 0.4


def test_categories_name_the_model_version(synthetic_output):
    with open_output(ExportConfig(output=synthetic_output.path, format="coco", to="/unused")) as reader:
        assert reader.categories.model_version == "yolo_nas_s@abababababab"


def test_runs_with_different_classes_are_refused_unless_one_is_named(synthetic_output, tmp_path):
    out = location(str(tmp_path / "out"))
    commit_run(out, run_id(1), {"00000": [Frame(f"{DATA}/a.jpg", [("person", 0.9, 0, 0, 5, 5)])]})
    commit_run(out, run_id(2), {"00000": [Frame(f"{DATA}/b.jpg")]}, class_names=("cat", "person"))
    with pytest.raises(UsageError, match="different model classes"):
        read(out.path)
    assert [r.name for r in read(out.path, run_id=run_id(1))] == ["a.jpg"]


@pytest.mark.parametrize(
    "arrange, options, message",
    [
        ("nothing", {}, "does not exist"),
        ("empty folder", {}, "is not a job output"),
        ("synthetic", {"run_id": "20250101T000000Z-abcdef"}, "no such run"),
        ("uncommitted", {}, "has no committed frames"),
        ("synthetic", {"classes": {"zebra": None}}, "'zebra' not among the model's 4 classes"),
    ],
)
def test_what_cannot_be_exported_is_one_usage_error(tmp_path, arrange, options, message):
    out = tmp_path / "out"
    if arrange == "empty folder":
        (out / "frames").mkdir(parents=True)
    elif arrange == "synthetic":
        commit_run(location(str(out)), RUN_A, {"00000": [Frame(f"{DATA}/a.jpg")]})
    elif arrange == "uncommitted":
        commit_run(location(str(out)), RUN_A, {"00000": [Frame(f"{DATA}/a.jpg")]}, uncommitted=frozenset({"00000"}))
    with pytest.raises(UsageError, match=message) as caught:
        read(str(out), **options)
    assert "\n" not in str(caught.value)


# --- names, splits, classes: the rules alone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, last, root",
    [
        ("file:///data/photos/a.jpg", "file:///data/photos/sub/z.jpg", "file:///data/photos/"),
        ("file:///data/photos/a.jpg", "file:///data/photos2/b.jpg", "file:///data/"),
        ("file:///a.jpg", "file:///b.jpg", "file:///"),
        ("file:///data/one.jpg", "file:///data/one.jpg", "file:///data/"),
        ("s3://bucket/in/a.jpg", "s3://bucket/in/b/c.jpg", "s3://bucket/in/"),
        ("s3://bucket-1/a.jpg", "s3://bucket-2/a.jpg", ""),
        ("file:///data/a.jpg", "s3://bucket/a.jpg", ""),
    ],
)
def test_the_image_root_is_the_deepest_common_folder(first, last, root):
    assert image_root(first, last) == root


def test_without_a_common_root_names_start_with_the_scheme():
    assert relative_name("s3://bucket-2/in/a.jpg", "") == "s3/bucket-2/in/a.jpg"
    assert relative_name("file:///data/a.jpg", "") == "file/data/a.jpg"


HOSTILE_KEYS = [
    "in/../../etc/passwd.jpg",
    "in/./a.jpg",
    "in//a.jpg",
    "in/a.jpg",
    "in/a\\b.jpg",
    "in/a_b.jpg",
    "in/tab\there.jpg",
    "in/" + "x" * 300 + ".jpg",
    "in/" + "x" * 301 + ".jpg",
    "in/..",
    "in/.",
]


def test_names_from_hostile_keys_stay_inside_the_export_and_apart():
    uris = sorted(f"s3://bucket/{key}" for key in HOSTILE_KEYS)
    root = image_root(uris[0], uris[-1])
    names = [frame_name(uri, 0, False, root) for uri in uris] + [frame_name(uris[0], 7, True, root)]
    assert len(set(names)) == len(names)
    target = ExportTarget(location("/tmp/export-target"))
    for name in names:
        assert not name.startswith("/") and all(s not in ("", ".", "..") for s in name.split("/"))
        assert all(len(s.encode()) <= 255 for s in name.split("/"))
        assert target.path(name).startswith("/tmp/export-target/")
    assert frame_name("s3://bucket/in/a.jpg", 0, False, root) == "a.jpg", "a plain name is kept as is"
    assert relative_name("s3://bucket/in/a\\b.jpg", root).endswith(".jpg"), "the extension stays last"


def test_the_target_refuses_paths_that_leave_it():
    target = ExportTarget(location("/tmp/export-target"))
    for bad in ("../x.txt", "/etc/x.txt", "a/../../x.txt", "a//b.txt", "./a.txt"):
        with pytest.raises(ValueError):
            target.path(bad)


def test_split_is_by_uri_alone_and_near_the_shares():
    shares = parse_split("train=0.7,val=0.2,test=0.1")
    uris = [f"s3://bucket/img{i:05d}.jpg" for i in range(20000)]
    splits = [Splitter(shares)(uri) for uri in uris]
    assert splits == [Splitter(shares)(uri) for uri in reversed(uris)][::-1], "order does not matter"
    counts = Counter(splits)
    for name, share in shares.items():
        assert counts[name] / len(uris) == pytest.approx(share, abs=0.015)
    splitter = Splitter(shares)
    assert len({splitter(uri) for uri in ["file:///v.mp4"] * 5}) == 1, "a video's frames share its URI's split"


@pytest.mark.parametrize(
    "text, message",
    [
        ("train=0.8,val=0.3", "sum to 1"),
        ("train=0.8", "sum to 1"),
        ("train=1,val=0", "above 0"),
        ("train=x", "expected NAME=SHARE"),
        ("train=0.5,train=0.5", "expected NAME=SHARE"),
        ("../x=0.5,val=0.5", "cannot name a split"),
        ("names=0.5,val=0.5", "cannot name a split"),
    ],
)
def test_bad_splits_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_split(text)


def test_classes_from_a_json_file(tmp_path):
    listed = tmp_path / "keep.json"
    listed.write_text('["person", "car"]')
    assert parse_classes(str(listed)) == {"person": None, "car": None}
    mapped = tmp_path / "map.json"
    mapped.write_text('{"car": "vehicle", "truck": "vehicle", "person": null}')
    mapping = class_map(["person", "car", "truck", "dog"], parse_classes(str(mapped)))
    assert mapping.categories.names == ("vehicle", "person")
    assert mapping.category_of == (1, 0, 0, None)
    with pytest.raises(UsageError, match="list of class names"):
        (tmp_path / "bad.json").write_text('{"car": 3}')
        parse_classes(str(tmp_path / "bad.json"))
