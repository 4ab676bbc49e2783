"""Videos through the whole job on a real local Ray: sampled frame rows, ranges spread over workers that give
exactly the rows of one pass, detections equal to super-gradients' ``predict()`` on the same frames, and
broken videos that keep what they decoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest

from tests.conftest import predict_boxes
from tests.support.job_runs import run_detect
from tests.support.parity import mismatches
from tests.support.videos import decode_all, encode_h264, photo_frames

STRIDE = 4


@pytest.fixture(scope="module")
def videos(tmp_path_factory, coco_images) -> Path:
    folder = tmp_path_factory.mktemp("videos") / "clips"
    folder.mkdir()
    encode_h264(folder / "clip.mp4", photo_frames(coco_images, 48, size=(640, 480)), fps=12)
    whole = encode_h264(folder / "whole.mp4", photo_frames(coco_images[5:], 24, size=(320, 240)), fps=12)
    data = whole.read_bytes()
    (folder / "broken.MP4").write_bytes(data[: len(data) * 6 // 10])
    whole.unlink()
    (folder / "junk.mkv").write_bytes(b"\x1a\x45\xdf\xa3 not really matroska" * 50)
    (folder / "photo.jpg").write_bytes(coco_images[0].read_bytes())
    return folder


def _frames(out: Path) -> list[dict]:
    rows = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    return sorted(rows, key=lambda r: (r["source_uri"], r["frame_index"]))


def _detections(out: Path) -> list[tuple]:
    table = ds.dataset(out / "detections", format="parquet", partitioning="hive").to_table()
    keys = ("source_uri", "frame_index", "timestamp_s", "class_id", "score", "x1", "y1", "x2", "y2")
    return sorted(tuple(r[k] for k in keys) for r in table.to_pylist())


@pytest.fixture(scope="module")
def split_run(tmp_path_factory, videos, probe_weights, ray_cluster):
    out = tmp_path_factory.mktemp("split") / "out"
    return run_detect([videos], out, probe_weights, video_stride=STRIDE, video_segment_frames=10, shard_size=4)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, videos, probe_weights, ray_cluster):
    out = tmp_path_factory.mktemp("whole") / "out"
    return run_detect([videos], out, probe_weights, video_stride=STRIDE, video_segment_frames=10_000)


def test_stride_gives_true_frame_numbers_and_timestamps(split_run, videos):
    rows = [r for r in _frames(split_run.out) if r["source_uri"].endswith("/clip.mp4")]
    assert [r["frame_index"] for r in rows] == list(range(0, 48, STRIDE))
    assert [r["timestamp_s"] for r in rows] == pytest.approx([i / 12 for i in range(0, 48, STRIDE)])
    assert {(r["status"], r["width"], r["height"]) for r in rows} == {("ok", 640, 480)}
    assert split_run.manifest.plan.items > split_run.manifest.plan.inputs  # the clip was cut into ranges
    assert split_run.manifest.plan.inputs == 4


def test_ranges_give_exactly_the_rows_of_one_pass(split_run, whole_run):
    def comparable(rows):
        return [{k: v for k, v in r.items() if k not in ("run_id", "shard_id", "run_date")} for r in rows]

    assert comparable(_frames(split_run.out)) == comparable(_frames(whole_run.out))
    assert _detections(split_run.out) == _detections(whole_run.out)
    assert len(_detections(split_run.out)) > 0


def test_video_frames_match_predict_on_sequentially_decoded_frames(split_run, videos, reference_model):
    decoded = decode_all(videos / "clip.mp4")
    sampled = list(range(0, 48, STRIDE))
    reference = dict(zip(sampled, predict_boxes(reference_model, [decoded[i] for i in sampled])))
    ours: dict[int, list] = {}
    for uri, index, _, class_id, score, *box in _detections(split_run.out):
        if uri.endswith("/clip.mp4"):
            ours.setdefault(index, []).append([*box, score, class_id])
    assert sum(len(v) for v in reference.values()) > 0
    assert mismatches({k: np.array(v) for k, v in ours.items()}, {k: v for k, v in reference.items() if len(v)}) == []


def test_broken_and_undecodable_videos_are_error_rows(split_run):
    rows = _frames(split_run.out)
    broken = [r for r in rows if r["source_uri"].endswith("/broken.MP4")]
    assert [r["status"] for r in broken[:-1]] == ["ok"] * (len(broken) - 1) and len(broken) > 1
    assert broken[-1]["status"] == "error" and "stream ended at frame" in broken[-1]["error"]
    assert broken[-1]["error"].startswith("decode: ")
    junk = [r for r in rows if r["source_uri"].endswith("/junk.mkv")]
    assert len(junk) == 1 and junk[0]["status"] == "error" and junk[0]["error"].startswith("decode: ")
    assert [r["status"] for r in rows if r["source_uri"].endswith("/photo.jpg")] == ["ok"]
    assert split_run.manifest.counts.error == 2
