"""``FrameRecord`` values as the export reader yields them, made directly, for testing format writers alone.

The sample covers what a writer must get right: nested names with spaces and non-ASCII characters, an S3 image,
video frames named ``<video>/frame_NNNNNN.jpg``, a frame without detections, boxes touching every edge of the image,
fractional pixel corners and several classes.
"""

from __future__ import annotations

from exports.records import Box, Categories, FrameRecord

CATEGORIES = Categories(names=("person", "traffic light", 'odd "name" & <co>'), model_version="yolo_nas_s@0123456789ab")
ROOT = "/data/photos"
"""Where the sample's local inputs lie (their ``source_uri`` is ``file://`` + a path under it)."""


def image(
    name: str, boxes: tuple[Box, ...], *, width: int = 640, height: int = 480, split: str | None = None
) -> FrameRecord:
    """A local still image ``ROOT/name``."""
    return FrameRecord(
        source_uri=f"file://{ROOT}/{name}",
        frame_index=0,
        timestamp_s=None,
        width=width,
        height=height,
        run_id="run-a",
        is_video=False,
        name=name,
        split=split,
        boxes=boxes,
    )


def video_frame(video: str, index: int, boxes: tuple[Box, ...], *, fps: float = 25.0) -> FrameRecord:
    """Frame ``index`` of the local video ``ROOT/video`` (1280x720)."""
    return FrameRecord(
        source_uri=f"file://{ROOT}/{video}",
        frame_index=index,
        timestamp_s=index / fps,
        width=1280,
        height=720,
        run_id="run-a",
        is_video=True,
        name=f"{video}/frame_{index:06d}.jpg",
        split=None,
        boxes=boxes,
    )


def s3_image(key: str, boxes: tuple[Box, ...]) -> FrameRecord:
    return FrameRecord(
        source_uri=f"s3://bucket/{key}",
        frame_index=0,
        timestamp_s=None,
        width=1000,
        height=750,
        run_id="run-b",
        is_video=False,
        name=key,
        split=None,
        boxes=boxes,
    )


def sample_frames() -> list[FrameRecord]:
    """Seven frames, two of them without boxes."""
    return [
        image(
            "park/a walk ü.jpg",
            (
                Box(category=0, score=0.91, x1=0.0, y1=0.0, x2=640.0, y2=480.0),
                Box(category=1, score=0.4237, x1=10.25, y1=20.5, x2=33.75, y2=61.125),
                Box(category=2, score=0.3, x1=601.1, y1=333.3, x2=639.9, y2=479.99),
            ),
        ),
        image("park/empty.png", ()),
        image(
            "street/cars.jpg", (Box(category=0, score=0.77, x1=1.5, y1=2.5, x2=3.5, y2=4.5),), width=4032, height=3024
        ),
        video_frame("clips/walk.mp4", 0, (Box(category=0, score=0.66, x1=100.0, y1=50.0, x2=400.5, y2=719.0),)),
        video_frame("clips/walk.mp4", 25, (Box(category=1, score=0.55, x1=0.0, y1=0.0, x2=1280.0, y2=1.0),)),
        video_frame("clips/walk.mp4", 50, ()),
        s3_image("incoming/cam 1/x.jpg", (Box(category=2, score=0.99, x1=499.5, y1=0.25, x2=1000.0, y2=750.0),)),
    ]
