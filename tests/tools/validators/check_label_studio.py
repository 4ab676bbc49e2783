"""Check a Label Studio export with Label Studio's own rules, offline: ``check_label_studio.py TASKS_DIR CONFIG``.

``LabelInterface(config)`` parses the labelling config as the server does and ``validate()`` applies its checks;
every task must carry the data its ``$variables`` name, and ``validate_prediction`` (what the server runs on each
imported prediction) must accept every prediction. Prints JSON: the task files, each task's data, its predictions'
errors and their boxes converted back to pixels (for the caller to compare with what was exported).

Video tracks (``videorectangle`` results) are also run through the SDK's ``extract_key_frames``, Label Studio's own
interpolation of a track between its keyframes: each track's ``frames`` are every frame it fills in (its keyframes
and, marked ``auto``, the frames between two keyframes of one stretch), in percent as Label Studio keeps them.
``validate_prediction`` does not check a track's labels against the ``<Labels>`` it is drawn with (the
``<VideoRectangle>`` control has none of its own), so ``unknown_labels`` lists those that the config lacks.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

from label_studio_sdk._extensions.label_studio_tools.postprocessing.video import extract_key_frames
from label_studio_sdk.label_interface import LabelInterface

VIDEO_TRACKING_TYPE = "videorectangle"


def main(tasks_dir: str, config_path: str) -> dict:
    interface = LabelInterface(Path(config_path).read_text(encoding="utf-8"))
    interface.validate()
    variables = [tag.value_name for tag in interface.objects if tag.value_is_variable]
    files, tasks = [], []
    for path in sorted(Path(tasks_dir).glob("tasks-*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        files.append({"name": path.name, "tasks": len(loaded)})
        for task in loaded:
            missing = [name for name in variables if task["data"].get(name) is None]
            tasks.append(
                {
                    "file": path.name,
                    "data": task["data"],
                    "missing_data": missing,
                    "predictions": [check_prediction(interface, p) for p in task.get("predictions", [])],
                }
            )
    return {"files": files, "tasks": tasks}


def check_prediction(interface: LabelInterface, prediction: dict) -> dict:
    results = prediction["result"]
    return {
        "model_version": prediction.get("model_version"),
        "score": prediction.get("score"),
        "errors": interface.validate_prediction(prediction, return_errors=True),
        "boxes": [pixel_box(result) for result in results if result["type"] != VIDEO_TRACKING_TYPE],
        "tracks": [
            interpolated_track(interface, result)
            for result in extract_key_frames(results)
            if result["type"] == VIDEO_TRACKING_TYPE
        ],
    }


def interpolated_track(interface: LabelInterface, result: dict) -> dict:
    """A ``videorectangle`` result after ``extract_key_frames``: every frame Label Studio shows the track on."""
    value = result["value"]
    known = {
        label
        for control in interface.controls
        if control.tag.lower() == "labels" and result["to_name"] in control.to_name
        for label in control.labels
    }
    return {
        "id": result["id"],
        "labels": value["labels"],
        "unknown_labels": [label for label in value["labels"] if label not in known],
        "score": result.get("score"),
        "frames_count": value["framesCount"],
        "duration": value["duration"],
        "frames": value["sequence"],
    }


def pixel_box(result: dict) -> dict:
    """A ``rectanglelabels`` result back in pixels, as Label Studio draws it on the original image."""
    value, width, height = result["value"], result["original_width"], result["original_height"]
    return {
        "label": value["rectanglelabels"],
        "score": result.get("score"),
        "x1": value["x"] * width / 100,
        "y1": value["y"] * height / 100,
        "x2": (value["x"] + value["width"]) * width / 100,
        "y2": (value["y"] + value["height"]) * height / 100,
    }


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON, whatever the libraries print
        report = main(*sys.argv[1:])
    json.dump(report, sys.stdout)
