"""The awkward-file corpus through the whole job on a real local Ray: one frames row per file with the exact
status, size (as displayed) and error cause; non-media skipped and counted; error kinds and exit code 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from tests.support.awkward_images import make_corpus
from tests.support.job_runs import output_boxes, run_detect
from tests.support.parity import mismatches


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, coco_images) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("corpus") / "awkward"
    folder.mkdir()
    expected = make_corpus(folder, coco_images[4])  # a photo the probe finds objects in on its small canvas
    (folder / "undecodable.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    (folder / "readme.md").write_text("not media")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder, expected


def _run(corpus, tmp_path_factory, probe_weights, decode: str):
    folder, expected = corpus
    out = tmp_path_factory.mktemp(f"corpus-{decode}") / "out"
    run = run_detect([folder], out, probe_weights, shard_size=8, decode=decode)
    rows = ds.dataset(run.out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    return run, expected, {Path(r["source_uri"]).name: r for r in rows}, rows


@pytest.fixture(scope="module")
def exact_run(corpus, tmp_path_factory, probe_weights, ray_cluster):
    return _run(corpus, tmp_path_factory, probe_weights, "exact")


@pytest.fixture(scope="module")
def device_run(corpus, tmp_path_factory, probe_weights, ray_cluster):
    """``--decode device``: JPEGs travel encoded and the model actors decode them (here on their CPU)."""
    return _run(corpus, tmp_path_factory, probe_weights, "device")


@pytest.fixture(params=["exact", "device"])
def corpus_run(request, ray_cluster):
    """Either run; ``ray_cluster`` named, so that the tests taking it run with the session's Ray (conftest)."""
    return request.getfixturevalue(f"{request.param}_run")


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


def test_decoding_on_the_model_device_gives_the_boxes_of_the_cpu_decode(exact_run, device_run):
    """Box for box, but for the CMYK JPEG, whose colours libjpeg-turbo and OpenCV convert with other rounding."""

    def by_name(out: Path) -> dict[str, np.ndarray]:
        return {Path(uri).name: boxes for uri, boxes in output_boxes(out).items() if not uri.endswith("cmyk.jpg")}

    exact, device = by_name(exact_run[0].out), by_name(device_run[0].out)
    assert {"photo.jpg", "progressive.jpg", "exif6.jpg", "gray.jpg", "photo.webp"} <= set(exact)
    assert mismatches(device, exact) == []
