"""Label Studio video object tracking: a task per video with its tracks as ``videorectangle`` predictions.

``config.xml`` is Label Studio's video object tracking template: ``<Labels>`` of the export's classes, a
``<Video>`` whose ``frameRate`` is the task's ``$fps`` and a ``<VideoRectangle>``. Label Studio counts frames from
the time and the frame rate it is given, so the rate must be the video's own; a project-wide number would put
every video of another rate off by a growing number of frames.

``tasks-NNNNN.json`` hold at most ``label_studio.MAX_TASKS_PER_FILE`` tasks each, in video order. A task's data:
``video``, the video's URL made as the image format makes an image's (``label_studio.ImageSources``: an ``s3://``
URI kept, a local file under ``/data/local-files/?d=`` relative to ``--document-root``), ``fps``, and where it came
from (``name``, ``source_uri``, ``frame_count``, ``frame_step``). Its one prediction holds a ``videorectangle``
result per track: ``labels`` the class, ``framesCount`` and ``duration`` the video's, and a ``sequence`` of the
keyframes: ``frame`` 1-based as Label Studio numbers them (``round(time × fps) + 1``), ``time`` the frame's
timestamp, the box in percent of the frame (6 decimals, clipped to 0–100), ``enabled`` false on the keyframe that
ends a visible stretch (``track_formats.stretch_ends``), so that Label Studio interpolates only between keyframes
of one stretch and not from the last keyframe to the end of the video. A result's ``score`` is its track's mean
score, the prediction's the mean of those (for sorting the least certain videos first); a video without tracks
has an empty prediction and no score.
"""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from common.storage import Location
from exports.formats.label_studio import CONFIG_FILE, DECIMALS, MAX_TASKS_PER_FILE, ImageSources, local_files_url
from exports.records import Categories, Track, TrackWriter, VideoTracks
from exports.spool import Spool
from exports.target import ExportTarget
from exports.track_formats import stretch_ends
from schemas.export_config import ExportConfig

VIDEO_NAME = "video"
"""The ``<Video>`` object: results' ``to_name``, and the task data key (``$video``) it plays."""
FPS_KEY = "fps"
"""The task data key of the video's frame rate (``frameRate="$fps"``)."""
BOX_NAME = "box"
"""The ``<VideoRectangle>`` control: results' ``from_name``."""
LABELS_NAME = "videoLabels"


def writer(config: ExportConfig, categories: Categories, target: Location) -> TrackWriter:
    return LabelStudioVideoWriter(config, categories, target)


class LabelStudioVideoWriter:
    """Streams a task per video into ``tasks-NNNNN.json`` files (each published when full), ``config.xml`` on
    ``close``."""

    def __init__(self, config: ExportConfig, categories: Categories, target: Location) -> None:
        self._videos = VideoSources(config.document_root)
        self._categories = categories
        self._target = ExportTarget(target)
        self._file: Spool | None = None
        self._files: list[str] = []
        self._tasks = 0

    def write(self, video: VideoTracks) -> None:
        if self._tasks % MAX_TASKS_PER_FILE == 0:
            self._finish_file()
            name = f"tasks-{len(self._files):05d}.json"
            self._file, self._files = self._target.spool(name), [*self._files, name]
            self._file.write("[\n")
        else:
            assert self._file is not None
            self._file.write(",\n")
        task = make_task(video, self._videos.url(video.source_uri), self._categories, task_number=self._tasks)
        self._file.write(json.dumps(task, ensure_ascii=False))
        self._tasks += 1

    def close(self) -> list[str]:
        if not self._tasks:  # no videos: one empty list, so the layout never varies
            self._files.append("tasks-00000.json")
            self._target.put(self._files[0], b"[]\n")
        self._finish_file()
        self._target.put(CONFIG_FILE, labelling_config(self._categories.names).encode())
        self._target.flush()
        return [*self._files, CONFIG_FILE]

    def _finish_file(self) -> None:
        if self._file is not None:
            self._file.write("\n]\n")
            self._file.publish()
            self._file = None


def make_task(video: VideoTracks, url: str, categories: Categories, task_number: int) -> dict[str, Any]:
    """One Label Studio task: the video, its rate and origin, and one prediction with a result per track."""
    data = {
        VIDEO_NAME: url,
        FPS_KEY: video.fps,
        "name": video.name,
        "source_uri": video.source_uri,
        "frame_count": video.frame_count,
        "frame_step": video.frame_step,
    }
    result = [region(track, video, categories, region_id=f"{task_number}_{track.track_id}") for track in video.tracks]
    prediction: dict[str, Any] = {"model_version": categories.model_version or "yolonas-batch", "result": result}
    if result:
        prediction["score"] = round(sum(r["score"] for r in result) / len(result), DECIMALS)
    return {"data": data, "predictions": [prediction]}


def region(track: Track, video: VideoTracks, categories: Categories, region_id: str) -> dict[str, Any]:
    """One track as a ``videorectangle`` result: its keyframes as the ``sequence`` Label Studio interpolates."""
    size = np.array([video.width, video.height, video.width, video.height], dtype=np.float64)
    corners = np.clip(np.round(100.0 * track.boxes.astype(np.float64) / size, DECIMALS), 0.0, 100.0)
    frames = np.round(track.times * video.fps).astype(np.int64) + 1
    sequence = [
        {
            "frame": frame,
            "enabled": not end,
            "rotation": 0,
            "x": left,
            "y": top,
            "width": round(max(right - left, 0.0), DECIMALS),
            "height": round(max(bottom - top, 0.0), DECIMALS),
            "time": time,
        }
        for frame, end, (left, top, right, bottom), time in zip(
            frames.tolist(),
            stretch_ends(track.frames, video.frame_step).tolist(),
            corners.tolist(),
            track.times.tolist(),
            strict=True,
        )
    ]
    return {
        "id": region_id,
        "type": "videorectangle",
        "from_name": BOX_NAME,
        "to_name": VIDEO_NAME,
        "value": {
            "framesCount": video.frame_count,
            "duration": video.duration_s,
            "sequence": sequence,
            "labels": [categories.names[track.category]],
        },
        "score": round(float(track.scores.mean()), DECIMALS),
    }


def labelling_config(names: tuple[str, ...]) -> str:
    """Label Studio's video object tracking template with the export's classes and the per-task frame rate,
    named as the results' ``from_name``/``to_name``."""
    labels = "".join(f"    <Label value={quoteattr(name)}/>\n" for name in names)
    return (
        "<View>\n"
        f'  <Labels name="{LABELS_NAME}" toName="{VIDEO_NAME}">\n'
        f"{labels}"
        "  </Labels>\n"
        f'  <Video name="{VIDEO_NAME}" value="${VIDEO_NAME}" frameRate="${FPS_KEY}"/>\n'
        f'  <VideoRectangle name="{BOX_NAME}" toName="{VIDEO_NAME}"/>\n'
        "</View>\n"
    )


class VideoSources(ImageSources):
    """``data.video`` of each video's task: its ``s3://`` URI, or its local-files URL under ``--document-root``
    (the image format's rules; a video is a file of its own, so it needs no root beyond Label Studio's default)."""

    def url(self, source_uri: str) -> str:
        if source_uri.startswith("file://"):
            return local_files_url(self._relative(source_uri[len("file://") :]))
        return source_uri
