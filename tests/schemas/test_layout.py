"""The output layout: what the writers name, the readers parse back, and nothing else under ``_runs`` passes for
a run, a manifest or a marker."""

from __future__ import annotations

import pytest

from schemas import layout

RUN = "20260102T030405Z-a1b2c3"


def test_part_files_name_their_run_and_shard():
    path = layout.part_file("frames", layout.partition("2026-01-02", "cam-1"), RUN, "00042")
    assert path == f"frames/run_date=2026-01-02/source=cam-1/part-{RUN}-00042.parquet"
    assert layout.parse_part_file(path) == (RUN, "00042")
    assert layout.parse_part_file(f"/out/{path}") == (RUN, "00042")


@pytest.mark.parametrize(
    "name",
    [f"part-{RUN}-00042.parquet.1a2b3c4d.tmp", f"part-{RUN}-00042.json", "part-00042.parquet", "notes.parquet"],
)
def test_other_files_in_the_tables_are_not_part_files(name):
    assert layout.parse_part_file(name) is None


def test_markers_and_manifests_parse_back_relative_to_runs():
    runs = layout.RUNS + "/"
    assert layout.parse_marker(layout.marker(RUN, "00007").removeprefix(runs)) == (RUN, "00007")
    assert layout.parse_manifest(layout.manifest(RUN).removeprefix(runs)) == RUN


@pytest.mark.parametrize(
    "relative",
    [
        layout.answered_index("model-fingerpri0").removeprefix(layout.RUNS + "/"),  # _index/<fp>.parquet
        "_index/shards/00001.json",
        layout.write_probe(RUN).removeprefix(layout.RUNS + "/"),
        f"{RUN}/plan.parquet",
        f"{RUN}/staging/00001/abc.arrow",
        f"{RUN}/shards/00001.json.1a2b3c4d.tmp",
        "_index.json",
        layout.lease().removeprefix(layout.RUNS + "/"),
        layout.lease_lock().removeprefix(layout.RUNS + "/"),
    ],
)
def test_nothing_else_under_runs_is_a_manifest_or_a_marker(relative):
    assert layout.parse_manifest(relative) is None and layout.parse_marker(relative) is None
