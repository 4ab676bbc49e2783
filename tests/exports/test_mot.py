"""The MOT 1.1 export of tracks, read back by datumaro's ``mot_seq`` importer (what CVAT's "MOT 1.1" import runs,
offline in the validators' environment) and line by line."""

from __future__ import annotations

import configparser
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from common.storage import location
from exports.formats import mot
from exports.records import VideoTracks
from schemas.export_config import ExportConfig
from tests.support.validators import run_validator
from tests.support.video_tracks import PIXEL_TOLERANCE, TRACK_CATEGORIES, sample_videos


def export(videos: list[VideoTracks], to: Path) -> list[str]:
    """Write ``videos`` as the export would: every video in order, then ``close``."""
    out = mot.writer(ExportConfig(output="/unused", format="mot", to=str(to)), TRACK_CATEGORIES, location(str(to)))
    for video in videos:
        out.write(video)
    return out.close()


def expected_boxes(video: VideoTracks) -> list[tuple[int, int, str, float, float, float, float]]:
    """Every keyframe as ``(MOT frame, track id, label, x1, y1, x2, y2)``, by frame and track."""
    return sorted(
        (frame + 1, t.track_id, TRACK_CATEGORIES.names[t.category], x1, y1, x2, y2)
        for t in video.tracks
        for frame, (x1, y1, x2, y2) in zip(t.frames.tolist(), t.boxes.tolist(), strict=True)
    )


@pytest.mark.slow
def test_datumaro_reads_back_each_sequence_with_its_frames_tracks_and_labels(tmp_path: Path) -> None:
    videos = sample_videos()
    export(videos, tmp_path)

    for video, sequence in zip(videos, ["camera__clip", "camera__walk"], strict=True):
        dataset = run_validator("check_datumaro.py", "mot_seq", tmp_path / sequence)

        assert dataset["detected"] == ["mot_seq"]
        assert dataset["labels"] == list(TRACK_CATEGORIES.names)
        items = dataset["items"]
        assert [item["id"] for item in items] == [str(frame) for frame in range(1, video.frame_count + 1)]
        assert {tuple(item["size"]) for item in items} == {(video.height, video.width)}
        back = sorted(
            (int(item["id"]), box["attributes"]["track_id"], box["label"], box["x1"], box["y1"], box["x2"], box["y2"])
            for item in items
            for box in item["boxes"]
        )
        expected = expected_boxes(video)
        assert [row[:3] for row in back] == [row[:3] for row in expected]
        assert np.allclose([row[3:] for row in back], [row[3:] for row in expected], rtol=0, atol=PIXEL_TOLERANCE)
        assert all(not box["attributes"]["ignored"] for item in items for box in item["boxes"])


def test_each_video_is_a_sequence_folder(tmp_path: Path) -> None:
    files = export(sample_videos(), tmp_path)

    assert files == [
        "camera__clip/seqinfo.ini",
        "camera__clip/gt/gt.txt",
        "camera__clip/gt/labels.txt",
        "camera__walk/seqinfo.ini",
        "camera__walk/gt/gt.txt",
        "camera__walk/gt/labels.txt",
    ]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == sorted(files)
    assert (tmp_path / "camera__walk/gt/labels.txt").read_text() == 'person\nodd "car" & <co>\n'
    info = configparser.ConfigParser()
    info.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case, as MOT writes them
    info.read(tmp_path / "camera__walk/seqinfo.ini")
    assert dict(info["Sequence"]) == {
        "name": "camera__walk",
        "imDir": "img1",
        "frameRate": "30",
        "seqLength": "40",
        "imWidth": "320",
        "imHeight": "240",
        "imExt": ".jpg",
    }


def test_gt_lines_are_one_based_frames_by_frame_then_track(tmp_path: Path) -> None:
    export(sample_videos(), tmp_path)

    lines = (tmp_path / "camera__walk/gt/gt.txt").read_text().splitlines()

    assert len(lines) == 11
    assert lines[:3] == [
        "1,1,0.00,0.00,32.50,48.25,0.9000,2,1",
        "4,1,3.00,3.00,32.50,48.25,0.8200,2,1",
        "7,1,6.00,6.00,32.50,48.25,0.7400,2,1",
    ]
    assert [line.split(",")[:2] for line in lines[3:]] == [
        ["10", "1"],
        ["13", "3"],
        ["16", "3"],
        ["19", "1"],
        ["20", "3"],
        ["22", "1"],
        ["31", "2"],
        ["34", "2"],
    ]
    assert lines[-1] == "34,2,100.75,51.00,40.50,39.50,0.5000,1,1"


def test_a_fractional_frame_rate_is_rounded_for_seqinfo(tmp_path: Path) -> None:
    """datumaro parses ``frameRate`` as an integer and fails on ``29.97``."""
    clip = sample_videos()[0]
    export([replace(clip, fps=29.97)], tmp_path)

    assert "frameRate=30\n" in (tmp_path / "camera__clip/seqinfo.ini").read_text()


def test_videos_differing_only_by_extension_get_distinct_folders(tmp_path: Path) -> None:
    clip = sample_videos()[0]
    videos = [replace(clip, name=name) for name in ("a.mp4", "a.avi.mp4", "a.avi")]

    files = export(videos, tmp_path)

    assert [name.split("/")[0] for name in files[::3]] == ["a", "a.avi", "a.avi-2"]
