"""The Label Studio video export of tracks, checked with Label Studio's own code (its SDK's ``LabelInterface`` and
its keyframe interpolation ``extract_key_frames``, run offline in the validators' environment) and by reading its
files back."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from common.storage import location
from exports.formats import label_studio_video
from exports.records import VideoTracks
from schemas.export_config import ExportConfig
from tests.support.frame_records import ROOT
from tests.support.validators import run_validator
from tests.support.video_tracks import PIXEL_TOLERANCE, TRACK_CATEGORIES, sample_videos

FILES = ["tasks-00000.json", "config.xml"]
STRETCHES = {
    ("camera/clip.mp4", 1): [(1, 4), (11, 13)],
    ("camera/clip.mp4", 2): [(27, 30)],
    ("camera/walk.mp4", 1): [(1, 10), (19, 22)],
    ("camera/walk.mp4", 2): [(31, 34)],
    ("camera/walk.mp4", 3): [(13, 20)],
}
"""The Label Studio frames (1-based, first and last) each of the sample's tracks is visible over."""


def export(videos: list[VideoTracks], to: Path, **options: Any) -> list[str]:
    """Write ``videos`` as the export would: every video in order, then ``close``."""
    config = ExportConfig(output="/unused", format="label-studio-video", to=str(to), **options)
    out = label_studio_video.writer(config, TRACK_CATEGORIES, location(str(to)))
    for video in videos:
        out.write(video)
    return out.close()


def tasks(folder: Path) -> list[dict[str, Any]]:
    return [task for path in sorted(folder.glob("tasks-*.json")) for task in json.loads(path.read_text())]


def pixels(value: dict[str, float], video: VideoTracks) -> list[float]:
    """A sequence item's box (percent of the frame) back in pixels, ``x1 y1 x2 y2``."""
    x, y = value["x"] * video.width / 100, value["y"] * video.height / 100
    return [x, y, x + value["width"] * video.width / 100, y + value["height"] * video.height / 100]


@pytest.mark.slow
def test_label_studio_accepts_every_track_and_interpolates_it_only_where_it_was_seen(tmp_path: Path) -> None:
    videos = sample_videos()
    assert export(videos, tmp_path, document_root=ROOT) == FILES

    checked = run_validator("check_label_studio.py", tmp_path, tmp_path / "config.xml")

    assert checked["files"] == [{"name": "tasks-00000.json", "tasks": 2}]
    for video, task in zip(videos, checked["tasks"], strict=True):
        assert task["missing_data"] == []
        [prediction] = task["predictions"]
        assert prediction["errors"] == [], f"{video.name}: {prediction['errors']}"
        assert prediction["boxes"] == []
        assert len(prediction["tracks"]) == len(video.tracks)
        for track, back in zip(video.tracks, prediction["tracks"], strict=True):
            assert back["labels"] == [TRACK_CATEGORIES.names[track.category]]
            assert back["unknown_labels"] == []
            stretches = STRETCHES[video.name, track.track_id]
            frames = [item["frame"] for item in back["frames"]]
            assert frames == [f for first, last in stretches for f in range(first, last + 1)]
            keyframes = {int(frame) + 1: box for frame, box in zip(track.frames, track.boxes.tolist(), strict=True)}
            for item in back["frames"]:
                frame = item["frame"]
                if frame in keyframes:
                    assert not item.get("auto")
                    expected = keyframes[frame]
                else:  # between two keyframes of one stretch: Label Studio's linear interpolation
                    assert item["auto"] is True
                    before = max(f for f in keyframes if f < frame)
                    after = min(f for f in keyframes if f > frame)
                    share = (frame - before) / (after - before)
                    expected = [a + share * (b - a) for a, b in zip(keyframes[before], keyframes[after], strict=True)]
                assert np.allclose(pixels(item, video), expected, rtol=0, atol=PIXEL_TOLERANCE), (video.name, frame)


@pytest.mark.slow
def test_label_studio_refuses_a_track_outside_the_frame_or_with_a_label_the_config_lacks(tmp_path: Path) -> None:
    """The check is live: a keyframe past the frame's edge is an error, an unknown label is reported."""
    export(sample_videos()[:1], tmp_path)
    path = tmp_path / "tasks-00000.json"
    [task] = json.loads(path.read_text())
    first, second = task["predictions"][0]["result"]
    first["value"]["labels"] = ["not in the config"]
    second["value"]["sequence"][0]["x"] = 100.5
    path.write_text(json.dumps([task]))

    [checked] = run_validator("check_label_studio.py", tmp_path, tmp_path / "config.xml")["tasks"]

    [prediction] = checked["predictions"]
    assert [error.split(":")[0] for error in prediction["errors"]] == ["Region 1"]
    assert [track["unknown_labels"] for track in prediction["tracks"]] == [["not in the config"], []]


def test_each_video_is_a_task_with_its_url_rate_and_one_result_per_track(tmp_path: Path) -> None:
    videos = sample_videos()
    export(videos, tmp_path, document_root=ROOT)

    written = tasks(tmp_path)

    assert [task["data"] for task in written] == [
        {
            "video": "/data/local-files/?d=camera/clip.mp4",
            "fps": 25.0,
            "name": "camera/clip.mp4",
            "source_uri": f"file://{ROOT}/camera/clip.mp4",
            "frame_count": 30,
            "frame_step": 1,
        },
        {
            "video": "s3://bucket/camera/walk.mp4",
            "fps": 30.0,
            "name": "camera/walk.mp4",
            "source_uri": "s3://bucket/camera/walk.mp4",
            "frame_count": 40,
            "frame_step": 3,
        },
    ]
    for video, task in zip(videos, written, strict=True):
        [prediction] = task["predictions"]
        assert prediction["model_version"] == TRACK_CATEGORIES.model_version
        track_scores = [float(track.scores.mean()) for track in video.tracks]
        assert prediction["score"] == pytest.approx(sum(track_scores) / len(track_scores), abs=1e-6)
        for track, result, score in zip(video.tracks, prediction["result"], track_scores, strict=True):
            assert {key: result[key] for key in ("type", "from_name", "to_name")} == {
                "type": "videorectangle",
                "from_name": "box",
                "to_name": "video",
            }
            assert result["score"] == pytest.approx(score, abs=1e-6)
            value = result["value"]
            assert (value["framesCount"], value["duration"]) == (video.frame_count, video.frame_count / video.fps)
            assert value["labels"] == [TRACK_CATEGORIES.names[track.category]]
            sequence = value["sequence"]
            assert [item["frame"] for item in sequence] == (track.frames + 1).tolist()
            assert [item["time"] for item in sequence] == track.times.tolist()
            assert {item["rotation"] for item in sequence} == {0}
            for item, box in zip(sequence, track.boxes.tolist(), strict=True):
                assert np.allclose(pixels(item, video), box, rtol=0, atol=PIXEL_TOLERANCE)
    ids = [result["id"] for task in written for result in task["predictions"][0]["result"]]
    assert ids == ["0_1", "0_2", "1_1", "1_2", "1_3"]


def test_a_stretch_ends_with_a_disabled_keyframe_where_the_next_is_more_than_a_step_away(tmp_path: Path) -> None:
    export(sample_videos(), tmp_path)

    enabled = [
        [[item["enabled"] for item in result["value"]["sequence"]] for result in task["predictions"][0]["result"]]
        for task in tasks(tmp_path)
    ]

    assert enabled == [
        [[True, True, True, False, True, True, False], [True, True, True, False]],  # a gap of 7 frames, step 1
        [[True, True, True, False, True, False], [True, False], [True, True, False]],  # 9 -> 18 at step 3; 15 -> 19 not
    ]


def test_frames_count_from_the_timestamp_at_the_videos_rate(tmp_path: Path) -> None:
    """Label Studio places a frame by its time: ``frame`` is ``round(time × fps) + 1``, not the decoder's index."""
    clip = sample_videos()[0]
    track = replace(clip.tracks[1], times=clip.tracks[1].times + 0.52)  # first frame at 0.52 s
    export([replace(clip, tracks=(track,))], tmp_path)

    [task] = tasks(tmp_path)

    assert [item["frame"] for item in task["predictions"][0]["result"][0]["value"]["sequence"]] == [40, 41, 42, 43]


def test_config_plays_the_video_at_the_tasks_frame_rate(tmp_path: Path) -> None:
    assert export([], tmp_path) == FILES

    config = (tmp_path / "config.xml").read_text()

    assert '<Video name="video" value="$video" frameRate="$fps"/>' in config
    assert '<VideoRectangle name="box" toName="video"/>' in config
    assert '<Labels name="videoLabels" toName="video">' in config
    assert "<Label value='odd \"car\" &amp; &lt;co&gt;'/>" in config
    assert json.loads((tmp_path / "tasks-00000.json").read_text()) == []


def test_tasks_are_split_over_files_of_at_most_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(label_studio_video, "MAX_TASKS_PER_FILE", 2)
    clip = sample_videos()[0]
    videos = [replace(clip, name=f"{i}.mp4", source_uri=f"file://{ROOT}/{i}.mp4", tracks=()) for i in range(5)]

    files = export(videos, tmp_path)

    assert files == ["tasks-00000.json", "tasks-00001.json", "tasks-00002.json", "config.xml"]
    assert [len(json.loads((tmp_path / name).read_text())) for name in files[:-1]] == [2, 2, 1]
    assert [task["data"]["name"] for task in tasks(tmp_path)] == [video.name for video in videos]
    assert tasks(tmp_path)[0]["predictions"] == [{"model_version": TRACK_CATEGORIES.model_version, "result": []}]
