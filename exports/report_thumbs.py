"""Annotated thumbnails for the report: the sampled frames read from their inputs (local or S3), boxes drawn.

Images are read and decoded the way the job reads and decodes them (``common.storage.location``,
``workers.decoding.decode_image`` with EXIF orientation, ``workers.video`` for a video frame), so the boxes,
which are in pixels of the oriented frame, land where the model saw the objects. An input that cannot be read
or decoded any more (moved, deleted, changed) becomes a tile that says why, never a failed report.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from common.storage import location
from exports.report_stats import SampledFrame
from workers.decoding import decode_image
from workers.errors import one_line
from workers.video import Sampling, VideoError, decode_frames, probe_video

THUMB_SIZE = 320
"""Thumbnails fit in a THUMB_SIZE x THUMB_SIZE square (aspect kept): a uniform grid."""
JPEG_QUALITY = 80
READERS = 4
"""Thumbnails made at once: hides object-store latency; each holds one decoded frame."""


@dataclass(frozen=True)
class Thumbnail:
    frame: SampledFrame
    jpeg: bytes | None
    """The annotated thumbnail, or None when the frame could not be had (``problem`` says why)."""
    problem: str | None = None


def thumbnails(frames: list[SampledFrame], storage_options: dict[str, Any]) -> list[Thumbnail]:
    """A thumbnail per frame, in order, with a progress bar (on a terminal) while they are read."""
    with ThreadPoolExecutor(max_workers=READERS) as pool:
        made: Iterator[Thumbnail] = pool.map(lambda frame: thumbnail(frame, storage_options), frames)
        return list(tqdm(made, total=len(frames), desc="thumbnails", unit="frame", disable=None))


def thumbnail(frame: SampledFrame, storage_options: dict[str, Any]) -> Thumbnail:
    """The frame, fitted into ``THUMB_SIZE`` and annotated, as JPEG; or the reason it could not be made.

    Any error is caught: whatever broke (a missing file, a corrupt one, a denied request, a codec failure), the
    report still shows the other frames, and this tile tells the cause in one line.
    """
    try:
        image = read_frame(frame, storage_options)
        scale = min(THUMB_SIZE / image.shape[1], THUMB_SIZE / image.shape[0])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        draw_boxes(small, frame.boxes, scale)
        ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return Thumbnail(frame, encoded.tobytes())
    except Exception as exc:  # a tile with the reason, whatever the cause
        return Thumbnail(frame, None, one_line(exc))


def read_frame(frame: SampledFrame, storage_options: dict[str, Any]) -> np.ndarray:
    """The frame's pixels (BGR, orientation applied): a still image, or the frame of a video it names."""
    source = location(frame.source_uri, storage_options)
    if frame.timestamp_s is None:
        return decode_image(source.read_bytes(), channels="bgr")
    with source.open_input() as file:
        info = probe_video(file)
        file.seek(0)
        target = frame.frame_index
        # Seek straight to the frame where the video allows it (as the job's ranges do); else decode from the
        # start, converting only frame 0 and the target to pixels.
        start = target if info.splittable else 0
        sampling = Sampling() if start == target else Sampling(stride=target)
        pixels = None
        for decoded in decode_frames(file, start, target + 1, sampling, info):  # ends after the target
            if decoded.index == target:
                pixels = cv2.cvtColor(decoded.image, cv2.COLOR_RGB2BGR)
    if pixels is not None:
        return pixels
    raise VideoError(f"frame {target} not found in the video")


def draw_boxes(image: np.ndarray, boxes: list[tuple[str, float, float, float, float, float]], scale: float) -> None:
    """Draw each box (scaled to the thumbnail) with a ``class score`` label, in its class's colour; best box
    last, so on top."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    for name, score, x1, y1, x2, y2 in reversed(boxes):
        colour = class_colour(name)
        p1 = (int(round(x1 * scale)), int(round(y1 * scale)))
        p2 = (int(round(x2 * scale)), int(round(y2 * scale)))
        cv2.rectangle(image, p1, p2, colour, 2)
        label = f"{_ascii(name)} {score:.2f}"
        (w, h), base = cv2.getTextSize(label, font, font_scale, 1)
        top = p1[1] - h - base - 2 if p1[1] - h - base - 2 >= 0 else p1[1]
        cv2.rectangle(image, (p1[0], top), (p1[0] + w + 4, top + h + base + 2), colour, cv2.FILLED)
        cv2.putText(image, label, (p1[0] + 2, top + h + 1), font, font_scale, _text_colour(colour), 1, cv2.LINE_AA)


def class_colour(name: str) -> tuple[int, int, int]:
    """A stable colour per class name (BGR): its hue from the name's MD5, the same in every report and chart."""
    hue = hashlib.md5(name.encode()).digest()[0] * 180 // 256
    hsv = np.array([[[hue, 200, 230]]], dtype=np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``background`` (BGR)."""
    b, g, r = background
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _ascii(text: str) -> str:
    """OpenCV's Hershey fonts draw ASCII only; other characters become ``?`` (the page shows names in full)."""
    return text.encode("ascii", "replace").decode("ascii")
