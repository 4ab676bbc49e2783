"""The Label Studio export, checked with Label Studio's own validation (its SDK's ``LabelInterface``, run offline
in the validators' environment) and by reading its files back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.errors import UsageError
from common.storage import location
from exports.cli import export_main
from exports.formats import label_studio, writer
from exports.records import Box, Categories, FrameRecord
from schemas.export_config import ExportConfig
from tests.support.frame_records import CATEGORIES, ROOT, image, s3_image, sample_frames, video_frame
from tests.support.outputs import Frame, commit_run
from tests.support.s3 import s3_client
from tests.support.validators import run_validator

PIXEL_TOLERANCE = 0.01


def export(frames: list[FrameRecord], to: Path | str, categories: Categories = CATEGORIES, **options: Any) -> list[str]:
    """Write ``frames`` as the CLI would (the registry's writer, every frame, then ``close``)."""
    config = ExportConfig(output="/unused", format="label-studio", to=str(to), **options)
    target = location(str(to), config.storage_options)
    out = writer(config, categories, target)
    for frame in frames:
        out.write(frame)
    return out.close()


def tasks(folder: Path) -> list[dict[str, Any]]:
    return [task for path in sorted(folder.glob("tasks-*.json")) for task in json.loads(path.read_text())]


def test_label_studio_accepts_every_task_and_its_boxes_map_back_to_the_pixels(tmp_path: Path) -> None:
    frames = sample_frames()
    assert export(frames, tmp_path, document_root=ROOT) == ["tasks-00000.json", "config.xml"]

    checked = run_validator("check_label_studio.py", tmp_path, tmp_path / "config.xml")

    assert checked["files"] == [{"name": "tasks-00000.json", "tasks": len(frames)}]
    for frame, task in zip(frames, checked["tasks"], strict=True):
        assert task["missing_data"] == []
        [prediction] = task["predictions"]
        assert prediction["errors"] == [], f"{frame.name}: {prediction['errors']}"
        assert prediction["model_version"] == CATEGORIES.model_version
        assert len(prediction["boxes"]) == len(frame.boxes)
        for box, back in zip(frame.boxes, prediction["boxes"], strict=True):
            assert back["label"] == [CATEGORIES.names[box.category]]
            assert back["score"] == pytest.approx(box.score, abs=1e-6)
            for corner in ("x1", "y1", "x2", "y2"):
                assert back[corner] == pytest.approx(getattr(box, corner), abs=PIXEL_TOLERANCE), (frame.name, corner)
        if frame.boxes:
            assert prediction["score"] == pytest.approx(sum(b.score for b in frame.boxes) / len(frame.boxes))
        else:
            assert prediction["score"] is None  # nothing found: an empty prediction, no score to sort by


def test_label_studio_rejects_what_does_not_match_the_config(tmp_path: Path) -> None:
    """The check is live: a label the config lacks and a box past the image's edge are refused."""
    export([image("a.jpg", (Box(0, 0.5, 1, 1, 2, 2), Box(1, 0.5, 1, 1, 2, 2)))], tmp_path)
    path = tmp_path / "tasks-00000.json"
    [task] = json.loads(path.read_text())
    first, second = task["predictions"][0]["result"]
    first["value"]["rectanglelabels"] = ["not in the config"]
    second["value"]["x"] = 100.5
    path.write_text(json.dumps([task]))

    [checked] = run_validator("check_label_studio.py", tmp_path, tmp_path / "config.xml")["tasks"]

    errors = checked["predictions"][0]["errors"]
    assert any("Region 0" in error for error in errors), errors
    assert any("Region 1" in error and "x 100.5" in error for error in errors), errors


def test_each_frame_is_one_task_with_its_origin(tmp_path: Path) -> None:
    frames = sample_frames()
    export(frames, tmp_path, document_root=ROOT)

    written = tasks(tmp_path)

    assert [task["data"]["name"] for task in written] == [frame.name for frame in frames]
    walk = written[4]["data"]  # clips/walk.mp4, frame 25
    assert walk["source_uri"] == f"file://{ROOT}/clips/walk.mp4"
    assert (walk["frame_index"], walk["timestamp_s"]) == (25, 1.0)
    assert walk["image"] == "/data/local-files/?d=clips/walk.mp4/frame_000025.jpg"
    region = written[0]["predictions"][0]["result"][1]
    assert region["from_name"] == "label" and region["to_name"] == "image" and region["type"] == "rectanglelabels"
    assert (region["original_width"], region["original_height"], region["image_rotation"]) == (640, 480, 0)
    assert len({r["id"] for task in written for r in task["predictions"][0]["result"]}) == sum(
        len(f.boxes) for f in frames
    )
    assert written[1]["predictions"] == [{"model_version": CATEGORIES.model_version, "result": []}]


def test_boxes_are_clipped_to_the_image_in_percent(tmp_path: Path) -> None:
    """Corners a float's width outside the image (pixel clipping in float32) stay within 0–100."""
    export([image("a.jpg", (Box(0, 0.5, -1e-4, -1e-4, 640.0001, 480.0001),))], tmp_path)

    value = tasks(tmp_path)[0]["predictions"][0]["result"][0]["value"]

    assert (value["x"], value["y"], value["width"], value["height"]) == (0.0, 0.0, 100.0, 100.0)


def test_config_declares_the_classes_the_predictions_use(tmp_path: Path) -> None:
    export([], tmp_path)

    config = (tmp_path / "config.xml").read_text()

    assert '<Image name="image" value="$image"/>' in config
    assert '<RectangleLabels name="label" toName="image">' in config
    assert "<Label value='odd \"name\" &amp; &lt;co&gt;'/>" in config
    assert json.loads((tmp_path / "tasks-00000.json").read_text()) == []


def test_tasks_are_split_over_files_of_at_most_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert label_studio.MAX_TASKS_PER_FILE == 10_000  # what Label Studio imports in one go without failing
    monkeypatch.setattr(label_studio, "MAX_TASKS_PER_FILE", 3)
    frames = [image(f"{i:02d}.jpg", ()) for i in range(7)]

    files = export(frames, tmp_path)

    assert files == ["tasks-00000.json", "tasks-00001.json", "tasks-00002.json", "config.xml"]
    sizes = [len(json.loads((tmp_path / name).read_text())) for name in files[:-1]]
    assert sizes == [3, 3, 1]
    assert [task["data"]["name"] for task in tasks(tmp_path)] == [frame.name for frame in frames]


@pytest.mark.parametrize(
    ("frame", "document_root", "expected"),
    [
        (s3_image("incoming/cam 1/x.jpg", ()), ROOT, "s3://bucket/incoming/cam 1/x.jpg"),
        (s3_image("incoming/x.jpg", ()), None, "s3://bucket/incoming/x.jpg"),
        (image("park/a walk ü.jpg", ()), ROOT, "/data/local-files/?d=park/a%20walk%20%C3%BC.jpg"),
        (image("park/x.jpg", ()), "/data", "/data/local-files/?d=photos/park/x.jpg"),
        (image("park/x.jpg", ()), f"file://{ROOT}/", "/data/local-files/?d=park/x.jpg"),
        (image("park/x.jpg", ()), None, "/data/local-files/?d=data/photos/park/x.jpg"),
        (video_frame("clips/walk.mp4", 7, ()), "/frames", "/data/local-files/?d=clips/walk.mp4/frame_000007.jpg"),
    ],
    ids=["s3", "s3-no-root", "local", "local-deeper-root", "root-as-uri", "local-default-root", "video"],
)
def test_data_image_is_where_label_studio_finds_the_image(
    tmp_path: Path, frame: FrameRecord, document_root: str | None, expected: str
) -> None:
    export([frame], tmp_path, document_root=document_root)

    assert tasks(tmp_path)[0]["data"]["image"] == expected


def test_a_local_image_outside_the_document_root_is_refused(tmp_path: Path) -> None:
    frames = [image("park/x.jpg", ()), image("park/y.jpg", ())]

    with pytest.raises(UsageError, match=r"/data/photos/park/x.jpg is not under --document-root /data/other"):
        export(frames, tmp_path / "out", document_root="/data/other")

    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_video_frames_need_a_document_root(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give --document-root"):
        export([video_frame("clips/walk.mp4", 0, ())], tmp_path)


def test_a_document_root_on_object_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="local folder"):
        export([image("x.jpg", ())], tmp_path, document_root="s3://bucket/photos")


def test_without_a_model_version_the_run_names_the_predictions(tmp_path: Path) -> None:
    export([image("x.jpg", ())], tmp_path, categories=Categories(names=("person",)))

    assert tasks(tmp_path)[0]["predictions"][0]["model_version"] == "yolonas-batch run run-a"


def test_exports_to_s3(s3_endpoint: str, s3_bucket: str, s3_environment: dict[str, str]) -> None:
    files = export(sample_frames(), f"s3://{s3_bucket}/ls", document_root=ROOT)

    client = s3_client(s3_endpoint)
    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(obj["Key"] for obj in listed) == sorted(f"ls/{name}" for name in files)
    body = client.get_object(Bucket=s3_bucket, Key="ls/tasks-00000.json")["Body"].read()
    assert len(json.loads(body)) == len(sample_frames())


def test_the_export_command_writes_tasks_label_studio_accepts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """From a job's output through ``yolonas-batch export``: the reader's frames, classes and model version."""
    out, dest = tmp_path / "out", tmp_path / "ls"
    frames = [
        Frame("file:///data/photos/a b.jpg", [("person", 0.9, 1.0, 2.0, 30.5, 40.25), ("car", 0.4, 0, 0, 64, 48)]),
        Frame("file:///data/photos/sub/empty.jpg"),
        Frame("file:///data/photos/clip.mp4", [("car", 0.7, 10, 10, 20, 20)], index=3),
        Frame("file:///data/photos/broken.jpg", error="decode: empty file", width=0, height=0),
    ]
    commit_run(out, "20260102T000000Z-aaaaaa", {"00000": frames})

    code = export_main(
        [str(out), "--format", "label-studio", "--to", str(dest), "--document-root", "/data", "--errors"]
    )

    assert code == 0, capsys.readouterr()
    checked = run_validator("check_label_studio.py", dest, dest / "config.xml")
    by_source = {task["data"]["source_uri"]: task for task in checked["tasks"]}
    assert sorted(by_source) == sorted(frame.uri for frame in frames)
    for frame in frames:
        task = by_source[frame.uri]
        assert task["missing_data"] == []
        if frame.error is not None:
            assert task["predictions"] == [] and task["data"]["error"] == frame.error
            continue
        [prediction] = task["predictions"]
        assert prediction["errors"] == []
        assert prediction["model_version"] == "yolo_nas_s@abababababab"  # the run's model and weights
        back = sorted((b["label"][0], b["x1"], b["y1"], b["x2"], b["y2"]) for b in prediction["boxes"])
        assert [b[0] for b in back] == sorted(box[0] for box in frame.boxes)
        for got, want in zip(back, sorted((b[0], *b[2:]) for b in frame.boxes), strict=True):
            assert got[1:] == pytest.approx(want[1:], abs=PIXEL_TOLERANCE)
    assert by_source["file:///data/photos/a b.jpg"]["data"]["image"] == "/data/local-files/?d=photos/a%20b.jpg"
    clip = by_source["file:///data/photos/clip.mp4"]["data"]
    assert clip["image"] == "/data/local-files/?d=clip.mp4/frame_000003.jpg" and clip["frame_index"] == 3
