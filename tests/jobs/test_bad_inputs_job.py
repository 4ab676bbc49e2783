"""The awkward-file corpus through the whole job on a real local Ray: one frames row per file with the exact
status, size (as displayed) and error cause; non-media skipped and counted; error kinds and exit code 3."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.support.awkward_images import make_corpus
from tests.support.job_runs import run_detect


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory, coco_images, probe_weights, ray_cluster):
    folder = tmp_path_factory.mktemp("corpus") / "awkward"
    folder.mkdir()
    expected = make_corpus(folder, coco_images[3])
    (folder / "undecodable.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    (folder / "readme.md").write_text("not media")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    run = run_detect([folder], tmp_path_factory.mktemp("corpus-out") / "out", probe_weights, shard_size=8)
    rows = ds.dataset(run.out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    return run, expected, {Path(r["source_uri"]).name: r for r in rows}, rows


def test_every_file_is_exactly_one_row_with_the_expected_outcome(corpus_run):
    run, expected, by_name, rows = corpus_run
    assert len(rows) == len(by_name) == len(expected) + 1
    for name, outcome in expected.items():
        row = by_name[name]
        assert row["status"] == outcome.status, (name, row["error"])
        if outcome.status == "ok":
            assert (row["width"], row["height"]) == outcome.size, name
            assert row["error"] is None
        else:
            assert row["error"].startswith(outcome.error), (name, row["error"])
            assert "\n" not in row["error"] and row["width"] is None and row["num_detections"] == 0


def test_undecodable_video_is_an_error_row(corpus_run):
    _, _, by_name, _ = corpus_run
    row = by_name["undecodable.mp4"]
    assert row["status"] == "error" and row["error"].startswith("decode: ") and row["frame_index"] == 0


def test_counts_by_kind_skipped_files_and_exit_code(corpus_run):
    run, expected, _, _ = corpus_run
    errors = sum(e.status == "error" for e in expected.values()) + 1
    assert run.manifest.counts.error == errors and run.manifest.counts.error_kinds == {"decode": errors}
    assert run.manifest.counts.ok == len(expected) + 1 - errors
    assert run.manifest.plan.skipped == {"not media": 2}
    assert run.result.exit_code == 3, run.log  # finished, but far more errors than --max-error-rate allows
    assert "decode " in run.log and "exit 3" in run.log
