"""MOT 1.1 (the MOTChallenge ground-truth layout) of tracks, one sequence folder per video, as datumaro's
``mot_seq`` importer reads it, and CVAT through it ("MOT 1.1").

Layout, per video (``<stem>``: its flat name without extension, ``track_formats.VideoStems``)::

    <stem>/seqinfo.ini     [Sequence] name, imDir=img1, frameRate, seqLength, imWidth, imHeight, imExt=.jpg
    <stem>/gt/gt.txt       frame,id,x,y,w,h,conf,class,visibility   one line per keyframe, by frame then id
    <stem>/gt/labels.txt   the class names, one a line, in category order

``frame`` is 1-based (``frame_index + 1``: the video's own frame numbers, as MOT numbers the images of
``img1/``), ``id`` the track id, ``x y w h`` the box in pixels (two decimals), ``conf`` the detection score (MOT's
"consider" column: datumaro reads 0 as ignored, and no kept detection scores 0), ``class`` 1-based into
``labels.txt`` (datumaro subtracts one), ``visibility`` 1. ``seqLength`` is the video's frame count and
``frameRate`` its rate rounded to an integer (datumaro parses it as one; the MOT benchmark's are integers).
Only the keyframes are written: MOT has no interpolation, and a reader that wants boxes between keyframes
interpolates them (CVAT's import makes a track of them, ending it where a gap exceeds the task's frame step).
No images are written: ``img1/`` is where the frames go when a tool wants them (``ffmpeg … -start_number 1``).
"""

from __future__ import annotations

from collections.abc import Iterator

from common.storage import Location
from exports.records import Categories, TrackWriter, VideoTracks
from exports.target import ExportTarget
from exports.track_formats import VideoStems
from schemas.export_config import ExportConfig

IMAGE_DIR = "img1"
IMAGE_EXT = ".jpg"


def writer(config: ExportConfig, categories: Categories, target: Location) -> TrackWriter:
    return MotWriter(categories, target)


class MotWriter:
    """Each video's sequence folder is written when it arrives: three small files, the largest one video's
    keyframes."""

    def __init__(self, categories: Categories, target: Location) -> None:
        self._labels = "".join(f"{name}\n" for name in categories.names).encode()
        self._target = ExportTarget(target)
        self._stems = VideoStems()
        self._files: list[str] = []

    def write(self, video: VideoTracks) -> None:
        stem = self._stems(video.name)
        files = {
            f"{stem}/seqinfo.ini": seqinfo(stem, video).encode(),
            f"{stem}/gt/gt.txt": gt_lines(video).encode(),
            f"{stem}/gt/labels.txt": self._labels,
        }
        for name, data in files.items():
            self._target.put(name, data)
        self._files += files

    def close(self) -> list[str]:
        self._target.flush()
        return self._files


def seqinfo(stem: str, video: VideoTracks) -> str:
    return (
        "[Sequence]\n"
        f"name={stem}\n"
        f"imDir={IMAGE_DIR}\n"
        f"frameRate={round(video.fps)}\n"
        f"seqLength={video.frame_count}\n"
        f"imWidth={video.width}\n"
        f"imHeight={video.height}\n"
        f"imExt={IMAGE_EXT}\n"
    )


def gt_lines(video: VideoTracks) -> str:
    """Every keyframe of every track as ``frame,id,x,y,w,h,conf,class,visibility``, by frame, then track id."""
    return "".join(
        f"{frame},{track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},{label},1\n"
        for frame, track_id, x1, y1, x2, y2, score, label in sorted(_keyframes(video))
    )


def _keyframes(video: VideoTracks) -> Iterator[tuple[int, int, float, float, float, float, float, int]]:
    """Python floats (``tolist``), so a width is the difference of the corners as written, not a float32 one."""
    for track in video.tracks:
        boxes, scores = track.boxes.tolist(), track.scores.tolist()
        for frame, (x1, y1, x2, y2), score in zip(track.frames.tolist(), boxes, scores, strict=True):
            yield frame + 1, track.track_id, x1, y1, x2, y2, score, track.category + 1
