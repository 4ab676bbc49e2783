"""Encode real test videos: H.264 with B-frames (so decode order differs from display order and seeking lands
on keyframes), made of the coco-tiny photos so the probe weights find objects in them."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def photo_frames(photos: list[Path], count: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """``count`` RGB frames of ``size`` (width, height), cycling through ``photos``."""
    frames = []
    for i in range(count):
        image = cv2.cvtColor(cv2.imread(str(photos[i % len(photos)])), cv2.COLOR_BGR2RGB)
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return frames


def encode_h264(
    path: Path,
    frames: list[np.ndarray],
    fps: int,
    gop: int = 12,
    b_frames: int = 2,
    codec: str = "libx264",
    rotation: float = 0,
    hflip: bool = False,
) -> Path:
    """Write ``frames`` (RGB) at constant rate ``fps`` in the container ``path``'s suffix names; MP4/MOV put
    their index first (faststart), as streamed files do, so a truncated file still declares its frame count.

    A ``rotation`` (degrees counter-clockwise, the sign FFmpeg reports) or ``hflip`` (a mirror after it) is
    written as the stream's display matrix, as a phone marks portrait video: the frames are stored unturned."""
    height, width = frames[0].shape[:2]
    options = {"movflags": "faststart"} if path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation or hflip:
            stream.set_display_rotation(rotation, hflip=hflip)
        if codec == "libx264":
            stream.options = {"bf": str(b_frames), "g": str(gop), "keyint_min": str(gop), "crf": "18"}
        else:
            stream.options = {"g": str(gop)}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame in display order by one sequential pass, the reference the job's numbering must match; pixels
    as stored (PyAV applies no display matrix)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def marked_frames(count: int = 6, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """Grey landscape frames (width, height) with a red square in the top-left corner only: where the square
    ends up, and whether the frame turned portrait, tell apart all eight turns and mirrors."""
    frame = np.full((size[1], size[0], 3), 128, dtype=np.uint8)
    frame[:16, :16] = (255, 0, 0)
    return [frame.copy() for _ in range(count)]
