"""The output layout: what the writers name, the readers parse back, and nothing else under ``_runs`` passes for
a run, a manifest or a marker."""

from __future__ import annotations

import pytest

from schemas import layout

RUN = "20260102T030405Z-a1b2c3"


def test_part_files_name_their_run_shard_and_epoch():
    path = layout.part_file("frames", layout.partition("2026-01-02", "cam-1"), RUN, "00042", 12)
    assert path == f"frames/run_date=2026-01-02/source=cam-1/part-{RUN}-00042-e12.parquet"
    assert layout.parse_part_file(path) == (RUN, "00042", 12)
    assert layout.parse_part_file(f"/out/{path}") == (RUN, "00042", 12)


def test_names_from_before_epochs_parse_as_epoch_0():
    legacy = f"frames/run_date=2026-01-02/source=cam-1/part-{RUN}-00042.parquet"
    assert layout.part_file("frames", layout.partition("2026-01-02", "cam-1"), RUN, "00042", 0) == legacy
    assert layout.parse_part_file(legacy) == (RUN, "00042", 0)
    assert layout.parse_marker(f"{RUN}/shards/00007.json") == (RUN, "00007", 0)
    assert layout.marker(RUN, "00007", 0) == f"_runs/{RUN}/shards/00007.json"


@pytest.mark.parametrize(
    "name",
    [
        f"part-{RUN}-00042.parquet.1a2b3c4d.tmp",
        f"part-{RUN}-00042-e3.parquet.1a2b3c4d.tmp",
        f"part-{RUN}-00042-e0.parquet",  # epoch 0 is written without the suffix: one name per epoch
        f"part-{RUN}-00042-e.parquet",
        f"part-{RUN}-00042.json",
        "part-00042.parquet",
        "notes.parquet",
    ],
)
def test_other_files_in_the_tables_are_not_part_files(name):
    assert layout.parse_part_file(name) is None


def test_a_partial_file_names_what_it_was_to_become():
    path = layout.part_file("frames", "p", RUN, "00042", 3)
    assert layout.unfinished(f"{path}.1a2b3c4d{layout.PARTIAL_SUFFIX}") == path
    assert layout.unfinished(path) is None
    assert layout.unfinished(f"{path}{layout.PARTIAL_SUFFIX}") is None


def test_markers_manifests_and_epoch_records_parse_back_relative_to_runs():
    runs = layout.RUNS + "/"
    assert layout.parse_marker(layout.marker(RUN, "00007", 3).removeprefix(runs)) == (RUN, "00007", 3)
    assert layout.parse_manifest(layout.manifest(RUN).removeprefix(runs)) == RUN
    assert layout.epoch_record(42) == "_runs/_epochs/0000000042.json"
    assert layout.parse_epoch_record(layout.epoch_record(42).removeprefix(runs)) == 42
    assert sorted([layout.epoch_record(10), layout.epoch_record(9)]) == [
        layout.epoch_record(9),
        layout.epoch_record(10),
    ]


@pytest.mark.parametrize(
    "relative",
    [
        layout.answered_index("model-fingerpri0").removeprefix(layout.RUNS + "/"),  # _index/<fp>.parquet
        "_index/shards/00001.json",
        layout.write_probe(RUN).removeprefix(layout.RUNS + "/"),
        f"{RUN}/plan.parquet",
        f"{RUN}/staging/00001/abc.arrow",
        f"{RUN}/shards/00001.json.1a2b3c4d.tmp",
        f"{RUN}/shards/00001-e0.json",
        "_index.json",
        layout.epoch_record(3).removeprefix(layout.RUNS + "/"),
        layout.lease().removeprefix(layout.RUNS + "/"),
        layout.lease_lock().removeprefix(layout.RUNS + "/"),
    ],
)
def test_nothing_else_under_runs_is_a_manifest_or_a_marker(relative):
    assert layout.parse_manifest(relative) is None and layout.parse_marker(relative) is None


KEY = "0123456789abcdef0123"
"""A track key: 20 hex digits, the video's half then the version's."""


@pytest.mark.parametrize("table", layout.TRACK_TABLES)
def test_track_part_files_name_their_key(table):
    path = layout.track_part_file(table, layout.partition("2026-01-02", "cam-1"), KEY)
    assert path == f"{table}/run_date=2026-01-02/source=cam-1/part-{KEY}.parquet"
    assert layout.parse_track_part_file(path) == KEY
    assert layout.parse_track_part_file(f"/out/{path}") == KEY


def test_track_markers_name_their_key():
    assert layout.track_marker(KEY) == f"_runs/_tracks/{KEY}.json"
    assert layout.parse_track_marker(layout.track_marker(KEY)) == KEY
    assert layout.parse_track_marker(f"/out/{layout.track_marker(KEY)}") == KEY


@pytest.mark.parametrize(
    "name",
    [
        layout.part_file(layout.FRAMES, "p", RUN, "00042", 1),
        layout.part_file(layout.DETECTIONS, "p", "0123456789", "0123456789", 0),  # all hex, but run and shard
        layout.track_part_file(layout.TRACKS, "p", KEY) + ".1a2b3c4d" + layout.PARTIAL_SUFFIX,
        layout.track_part_file(layout.TRACKS, "p", KEY.upper()),
        layout.track_part_file(layout.TRACKS, "p", KEY[:-1]),
        layout.track_marker(KEY),
    ],
)
def test_other_files_are_not_track_part_files(name):
    assert layout.parse_track_part_file(name) is None


@pytest.mark.parametrize(
    "name",
    [
        layout.manifest(RUN),
        layout.marker(RUN, "00007", 2),
        layout.track_marker(KEY) + ".1a2b3c4d" + layout.PARTIAL_SUFFIX,
        layout.track_part_file(layout.TRACKS, "p", KEY),
    ],
)
def test_other_files_are_not_track_markers(name):
    assert layout.parse_track_marker(name) is None


def test_track_files_are_not_taken_for_the_detect_jobs():
    """A track part file is no ``part-<run>-<shard>`` file; a track marker, relative to ``_runs``, is no manifest
    and no shard marker."""
    assert layout.parse_part_file(layout.track_part_file(layout.TRACKS, "p", KEY)) is None
    relative = layout.track_marker(KEY).removeprefix(layout.RUNS + "/")
    assert layout.parse_manifest(relative) is None and layout.parse_marker(relative) is None
