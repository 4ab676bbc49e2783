"""The CVAT for video 1.1 export of tracks, read back by datumaro's CVAT importer (run offline in the validators'
environment) and checked against the structure of CVAT's own video-task export."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from common.storage import location
from exports.formats import cvat_video
from exports.records import VideoTracks
from schemas.export_config import ExportConfig
from tests.support.validators import run_validator
from tests.support.video_tracks import PIXEL_TOLERANCE, TRACK_CATEGORIES, sample_videos

BOX_ATTRIBUTES = ["frame", "keyframe", "outside", "occluded", "xtl", "ytl", "xbr", "ybr", "z_order"]
"""In the order CVAT's ``dump_as_cvat_interpolation`` writes them."""
FILES = ["camera__clip.xml", "camera__walk.xml"]
OUTSIDE_FRAMES = {
    ("camera__clip", 1): [4, 13],
    ("camera__clip", 2): [],  # its last keyframe is the video's last frame
    ("camera__walk", 1): [12, 24],
    ("camera__walk", 2): [36],
    ("camera__walk", 3): [22],
}
"""Where the sample's tracks stop being visible: one sampling step after each stretch (none past the last frame)."""


def export(videos: list[VideoTracks], to: Path) -> list[str]:
    """Write ``videos`` as the export would: every video in order, then ``close``."""
    config = ExportConfig(output="/unused", format="cvat-video", to=str(to))
    out = cvat_video.writer(config, TRACK_CATEGORIES, location(str(to)))
    for video in videos:
        out.write(video)
    return out.close()


def expected_boxes(video: VideoTracks) -> dict[tuple[int, int], tuple[str, bool, list[float]]]:
    """``(frame, track id) -> (label, outside, corners)`` of every box the video's file should hold: each
    keyframe, and an outside box repeating the last corners one step after each visible stretch."""
    boxes = {}
    for track in video.tracks:
        label = TRACK_CATEGORIES.names[track.category]
        frames, corners = track.frames.tolist(), track.boxes.tolist()
        for i, frame in enumerate(frames):
            boxes[frame, track.track_id] = (label, False, corners[i])
            last_of_stretch = i == len(frames) - 1 or frames[i + 1] - frame > 1.5 * video.frame_step
            if last_of_stretch and frame + video.frame_step < video.frame_count:
                boxes[frame + video.frame_step, track.track_id] = (label, True, corners[i])
    return boxes


@pytest.mark.slow
def test_datumaro_reads_back_every_box_with_its_frame_track_and_visibility(tmp_path: Path) -> None:
    videos = sample_videos()
    export(videos, tmp_path)

    dataset = run_validator("check_datumaro.py", "cvat", tmp_path)

    assert dataset["detected"] == ["cvat"]
    assert dataset["labels"] == list(TRACK_CATEGORIES.names)
    for video, subset in zip(videos, ["camera__clip", "camera__walk"], strict=True):
        items = [item for item in dataset["items"] if item["subset"] == subset]  # a task file is a subset
        assert all(item["id"] == f"frame_{item['attributes']['frame']:06d}" for item in items)
        back = {
            (item["attributes"]["frame"], box["attributes"]["track_id"]): box for item in items for box in item["boxes"]
        }
        expected = expected_boxes(video)
        assert sorted(back) == sorted(expected)
        for key, (label, outside, corners) in expected.items():
            box = back[key]
            assert (box["label"], box["attributes"]["outside"], box["attributes"]["keyframe"]) == (label, outside, True)
            assert np.allclose([box[c] for c in ("x1", "y1", "x2", "y2")], corners, rtol=0, atol=PIXEL_TOLERANCE)
    assert len(dataset["items"]) == len({(key[0], video.name) for video in videos for key in expected_boxes(video)})


def test_each_video_is_a_task_file_in_cvats_video_layout(tmp_path: Path) -> None:
    assert export(sample_videos(), tmp_path) == FILES

    root = ET.parse(tmp_path / "camera__walk.xml").getroot()

    assert [child.tag for child in root] == ["version", "meta", "track", "track", "track"]
    assert root.findtext("version") == "1.1"
    task = root.find("meta/task")
    assert task is not None
    fields = ["size", "mode", "start_frame", "stop_frame", "frame_filter"]
    assert [task.findtext(field) for field in fields] == ["40", "interpolation", "0", "39", ""]  # see below
    assert (task.findtext("original_size/width"), task.findtext("original_size/height")) == ("320", "240")
    assert root.findtext("meta/source") == "camera/walk.mp4"
    labels = task.findall("labels/label")
    assert [label.findtext("name") for label in labels] == list(TRACK_CATEGORIES.names)
    for label in labels:
        assert [a.findtext("name") for a in label.findall("attributes/attribute")] == ["score"]
        assert label.findtext("attributes/attribute/mutable") == "True"  # a score per keyframe


def test_the_task_takes_every_nth_frame_only_where_every_keyframe_is_on_that_grid(tmp_path: Path) -> None:
    """A CVAT task with a frame step holds frames 0, N, 2N…: walk's third track has a keyframe at 19 (the steps
    ``--video-fps`` rounds), so only without it can walk's task skip frames."""
    clip, walk = sample_videos()
    export([clip, replace(walk, tracks=walk.tracks[:2])], tmp_path)

    fields = ["size", "start_frame", "stop_frame", "frame_filter"]
    tasks = [ET.parse(tmp_path / name).getroot().find("meta/task") for name in FILES]

    assert [[task.findtext(field) for field in fields] for task in tasks if task is not None] == [
        ["30", "0", "29", ""],  # every frame detected: no filter
        ["14", "0", "39", "step=3"],
    ]


def test_tracks_have_keyframes_and_an_outside_box_after_each_visible_stretch(tmp_path: Path) -> None:
    videos = sample_videos()
    export(videos, tmp_path)

    for video, name in zip(videos, FILES, strict=True):
        tracks = ET.parse(tmp_path / name).getroot().findall("track")
        assert [(t.get("id"), t.get("source")) for t in tracks] == [(str(t.track_id), "auto") for t in video.tracks]
        for element, track in zip(tracks, video.tracks, strict=True):
            assert element.get("label") == TRACK_CATEGORIES.names[track.category]
            boxes = element.findall("box")
            assert all(list(box.attrib) == BOX_ATTRIBUTES for box in boxes)
            frames = [int(box.get("frame", "")) for box in boxes]
            assert frames == sorted(frames)
            outside = [frame for frame, box in zip(frames, boxes, strict=True) if box.get("outside") == "1"]
            assert [frame for frame in frames if frame not in outside] == track.frames.tolist()
            assert outside == OUTSIDE_FRAMES[name.removesuffix(".xml"), track.track_id]
            keyframes = [box for box in boxes if box.get("outside") == "0"]
            scores = [box.findtext("attribute[@name='score']") for box in keyframes]
            assert scores == [f"{score:.4f}" for score in track.scores.tolist()]
    walk = ET.parse(tmp_path / FILES[1]).getroot().findall("track")
    assert [(b.get("frame"), b.get("outside")) for b in walk[2].findall("box")] == [  # 15 -> 19: one (rounded) step
        ("12", "0"),
        ("15", "0"),
        ("19", "0"),
        ("22", "1"),
    ]
    assert walk[1].findall("box")[-1].attrib == {
        "frame": "36",
        "keyframe": "1",
        "outside": "1",
        "occluded": "0",
        "xtl": "100.75",
        "ytl": "51.00",
        "xbr": "141.25",
        "ybr": "90.50",
        "z_order": "0",
    }


def test_an_export_without_videos_writes_no_files(tmp_path: Path) -> None:
    assert export([], tmp_path) == []
    assert list(tmp_path.iterdir()) == []
