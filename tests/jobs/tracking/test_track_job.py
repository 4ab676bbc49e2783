"""``detect`` then ``track --iceberg`` on real clips, real Ray and the probe weights, then the three formats of
tracks read back by their own clients: a track's boxes are the detections' boxes, in the table and at every
exported keyframe; the Iceberg tables of tracks hold exactly the tracks ``export`` reads.

The clips pan slowly over a COCO photo, so the same objects stay in view, move a little each frame and are found
again frame after frame; the clip is detected in ranges of 10 frames on different shards, so tracks cross range
boundaries. The probe weights score low, so the tracker's thresholds are lowered to match.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pyarrow.dataset as ds
import pytest

from common.storage import location
from exports.run import run_export
from jobs.tracking.runner import run_tracking
from schemas.export_config import ExportConfig
from schemas.manifest import IcebergState
from schemas.track_config import TrackConfig
from tables.catalog import open_catalog
from tests.support.job_runs import run_detect
from tests.support.validators import run_validator
from tests.support.videos import encode_h264
from tests.tables.conftest import exported_tracks, track_table_rows

FRAMES = 30
SEGMENT_FRAMES = 10
SETTINGS = {"high_score": 0.3, "new_track_score": 0.3, "min_iou": 0.3}
"""The probe weights' scores are 0.25-0.6: tracks start and continue from boxes scored 0.3 and up."""
EXPORTED_PIXELS = 0.01
"""CVAT and MOT write corners with two decimals; Label Studio percentages with six."""


def pan(photo: Path, count: int, size: tuple[int, int] = (320, 240), step: int = 3) -> list[np.ndarray]:
    """``count`` RGB frames of a window of ``size`` moving ``step`` px right per frame across ``photo``."""
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    width = image.shape[1]
    return [
        np.ascontiguousarray(image[: size[1], min(i * step, width - size[0]) :][:, : size[0]]) for i in range(count)
    ]


def table(out: Path, name: str) -> list[dict]:
    return ds.dataset(out / name, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, coco_images, probe_weights, ray_cluster) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("track-job")
    clips = root / "clips"
    clips.mkdir()
    encode_h264(clips / "pan.mp4", pan(coco_images[0], FRAMES), fps=10)
    encode_h264(clips / "walk.mp4", pan(coco_images[3], FRAMES), fps=10)
    (clips / "photo.jpg").write_bytes(coco_images[1].read_bytes())
    out = root / "out"
    detected = run_detect([clips], out, probe_weights, video_segment_frames=SEGMENT_FRAMES, shard_size=4)
    stream = io.StringIO()
    catalog = f"sqlite:///{root / 'catalog.db'}"
    result = run_tracking(TrackConfig(output=str(out), iceberg=catalog, **SETTINGS), stream=stream)
    return SimpleNamespace(out=out, detected=detected, result=result, log=stream.getvalue(), catalog=catalog)


def test_tracks_are_the_detections_boxes_followed_across_range_boundaries(tracked):
    assert tracked.result.exit_code == 0 and len(tracked.result.commits) == 2, tracked.log
    assert tracked.detected.manifest.plan.items > tracked.detected.manifest.plan.inputs  # clips cut into ranges
    keys = ("source_uri", "frame_index", "timestamp_s", "class_id", "class_name", "score", "x1", "y1", "x2", "y2")
    detections = {tuple(row[k] for k in keys) for row in table(tracked.out, "detections")}
    tracks = table(tracked.out, "tracks")
    assert len(tracks) > 0
    assert [tuple(row[k] for k in keys) for row in tracks if tuple(row[k] for k in keys) not in detections] == []
    by_track: dict[tuple[str, int], list[int]] = {}
    for row in tracks:
        by_track.setdefault((row["source_uri"], row["track_id"]), []).append(row["frame_index"])
    assert len(set(map(tuple, (sorted(f) for f in by_track.values())))) > 1
    crossing = [k for k, frames in by_track.items() if min(frames) < SEGMENT_FRAMES <= max(frames)]
    assert crossing, "a track must cross the boundary between the first two ranges"
    for uri in {uri for uri, _ in by_track}:
        assert sorted(i for u, i in by_track if u == uri) == list(range(1, 1 + sum(u == uri for u, _ in by_track)))
    summaries = {(r["source_uri"], r["track_id"]): r for r in table(tracked.out, "track_summaries")}
    assert sorted(summaries) == sorted(by_track)
    for key, frames in by_track.items():
        summary = summaries[key]
        assert (summary["first_frame"], summary["last_frame"], summary["length"]) == (
            min(frames),
            max(frames),
            len(frames),
        )


def test_the_iceberg_tables_hold_the_tracks_export_reads(tracked):
    out = location(str(tracked.out))
    tracks, summaries = track_table_rows(_catalog(tracked), "out")
    assert (tracks, summaries) == exported_tracks(out)
    assert len(tracks) == len(table(tracked.out, "tracks")) > 0
    assert len(summaries) == len(table(tracked.out, "track_summaries"))
    assert tracked.result.iceberg == IcebergState(namespace="out", published_shards=2, error=None)
    assert "  iceberg: out.tracks and out.track_summaries hold the tracks of 2 videos" in tracked.result.lines(out)


def test_tracking_again_finds_every_video_done(tracked):
    snapshots = {t: len(_catalog(tracked).load_table(f"out.{t}").snapshots()) for t in ("tracks", "track_summaries")}
    again = run_tracking(
        TrackConfig(output=str(tracked.out), iceberg=tracked.catalog, **SETTINGS), stream=io.StringIO()
    )
    assert (again.exit_code, again.commits, again.skipped, again.removed) == (0, [], 2, 0)
    assert again.iceberg == tracked.result.iceberg
    assert {t: len(_catalog(tracked).load_table(f"out.{t}").snapshots()) for t in snapshots} == snapshots


def _catalog(tracked):
    return open_catalog(tracked.catalog, (tracked.out / "_iceberg").as_uri())


def _keyframes(out: Path) -> dict[tuple[str, int], list[tuple[int, list[float]]]]:
    """(video name, track id) -> its (frame index, box) in frame order, from the tracks table."""
    found: dict[tuple[str, int], list[tuple[int, list[float]]]] = {}
    for row in sorted(table(out, "tracks"), key=lambda r: (r["source_uri"], r["track_id"], r["frame_index"])):
        name = row["source_uri"].rsplit("/", 1)[-1]
        found.setdefault((name, row["track_id"]), []).append(
            (row["frame_index"], [row[c] for c in ("x1", "y1", "x2", "y2")])
        )
    return found


def _export(tracked, fmt: str, to: Path) -> None:
    run_export(ExportConfig(output=str(tracked.out), format=fmt, to=str(to)), stream=io.StringIO())


@pytest.mark.slow
def test_label_studio_reads_back_every_keyframe(tracked, tmp_path):
    _export(tracked, "label-studio-video", tmp_path)
    checked = run_validator("check_label_studio.py", tmp_path, tmp_path / "config.xml")
    keyframes = _keyframes(tracked.out)
    sizes = {r["source_uri"].rsplit("/", 1)[-1]: (r["width"], r["height"]) for r in table(tracked.out, "frames")}
    seen = 0
    for task in checked["tasks"]:
        name = task["data"]["video"].rsplit("/", 1)[-1]
        [prediction] = task["predictions"]
        assert prediction["errors"] == []
        for track_id, back in enumerate(prediction["tracks"], start=1):
            boxes = {frame: box for frame, box in keyframes[name, track_id]}
            width, height = sizes[name]
            for item in back["frames"]:
                if item.get("auto"):
                    continue
                x, y = item["x"] * width / 100, item["y"] * height / 100
                corners = [x, y, x + item["width"] * width / 100, y + item["height"] * height / 100]
                assert np.allclose(corners, boxes[item["frame"] - 1], atol=EXPORTED_PIXELS), (name, track_id, item)
                seen += 1
    assert seen == sum(len(v) for v in keyframes.values())


@pytest.mark.slow
def test_cvat_and_mot_read_back_every_keyframe_through_datumaro(tracked, tmp_path):
    keyframes = _keyframes(tracked.out)
    _export(tracked, "cvat-video", tmp_path / "cvat")
    cvat = run_validator("check_datumaro.py", "cvat", tmp_path / "cvat")
    back = {
        (item["subset"] + ".mp4", box["attributes"]["track_id"], item["attributes"]["frame"]): box
        for item in cvat["items"]
        for box in item["boxes"]
        if not box["attributes"]["outside"]
    }
    expected = {(name, track, frame): box for (name, track), boxes in keyframes.items() for frame, box in boxes}
    assert sorted(back) == sorted(expected)
    for key, box in expected.items():
        assert np.allclose([back[key][c] for c in ("x1", "y1", "x2", "y2")], box, atol=EXPORTED_PIXELS), key

    _export(tracked, "mot", tmp_path / "mot")
    for name in ("pan.mp4", "walk.mp4"):
        mot = run_validator("check_datumaro.py", "mot_seq", tmp_path / "mot" / name.removesuffix(".mp4"))
        found = {
            (box["attributes"]["track_id"], int(item["id"]) - 1): [box[c] for c in ("x1", "y1", "x2", "y2")]
            for item in mot["items"]
            for box in item["boxes"]
        }
        wanted = {
            (track, frame): box for (video, track), boxes in keyframes.items() if video == name for frame, box in boxes
        }
        assert sorted(found) == sorted(wanted)
        for key, box in wanted.items():
            assert np.allclose(found[key], box, atol=EXPORTED_PIXELS), (name, key)
