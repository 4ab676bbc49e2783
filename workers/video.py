"""Video frames for the model: probe a video's rate and length, and decode one frame range of it, sampled.

Frames are numbered as sequential decoding numbers them. A range that starts at frame 0 counts decoded frames;
a range that starts later seeks to the keyframe before it and numbers frames by presentation time at the
stream's constant rate, which for constant-rate video is the same number (planning splits only such video).
So a video cut into ranges yields exactly the frames, numbers and pixels that one pass from the start yields.

Decoding uses PyAV (FFmpeg) on any seekable binary file object: a local file, or fsspec's ranged reader on an
object store, so a remote video streams in blocks instead of being copied whole.

Frames come out as players show them: a phone stores portrait video as landscape frames plus a display matrix
(rotation side data). The matrix is applied here, as EXIF orientation is for images, so the model sees people
upright, and boxes, width and height are in the pixels of the frame as displayed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Iterator, Mapping, cast

import av
import numpy as np
from av.buffer import Buffer
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import VideoReformatter

from workers.errors import one_line
from workers.letterbox import LetterboxSpec, target_size


class VideoError(Exception):
    """The video cannot be opened or decoding broke; the message is one line, without the stage prefix."""


@dataclass(frozen=True)
class VideoInfo:
    """What planning needs to know about a video, from its header only."""

    fps: float
    frames: int | None
    """Frame count from the container (exact for MP4/MOV), else estimated from the duration; None if unknown."""
    exact_count: bool
    """Whether ``frames`` is the container's own count, so a stream that ends sooner is known to be broken."""
    splittable: bool
    """Whether frame numbers can be derived from timestamps (constant rate, a container with presentation
    timestamps), which is what lets a video be decoded in ranges. AVI stores no presentation timestamps."""


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames become ``frames`` rows: every ``stride``-th, or the nearest to a target rate."""

    stride: int | None = None
    fps: float | None = None
    max_frames: int | None = None

    def sample_number(self, index: int, video_fps: float) -> int | None:
        """The ordinal of frame ``index`` among the sampled frames, or None when it is not sampled."""
        if self.fps is not None and self.fps < video_fps:
            ratio = video_fps / self.fps
            k = _nearest(index / ratio)
            number = k if _nearest(k * ratio) == index else None
        else:
            step = self.stride or 1
            number = index // step if index % step == 0 else None
        if number is None or (self.max_frames is not None and number >= self.max_frames):
            return None
        return number

    def last_index(self, video_fps: float) -> int | None:
        """Frame index of the last sample ``max_frames`` allows, or None when the video's end decides."""
        if self.max_frames is None:
            return None
        k = self.max_frames - 1
        if self.fps is not None and self.fps < video_fps:
            return _nearest(k * video_fps / self.fps)
        return k * (self.stride or 1)

    def expected(self, start: int, stop: int, video_fps: float) -> int:
        """How many sampled frames ``[start, stop)`` holds (a planning estimate used to size shards)."""
        return sum(1 for i in range(start, stop) if self.sample_number(i, video_fps) is not None)


@dataclass(frozen=True)
class VideoFrame:
    index: int
    timestamp_s: float
    image: np.ndarray
    """(H, W, 3) uint8 RGB, in the displayed orientation (the stream's display matrix applied); already at the
    letterbox's target size when decoded with ``fit``."""
    full: tuple[int, int]
    """(height, width) of the frame as displayed, at full size: what boxes map back to."""


def probe_video(file: BinaryIO) -> VideoInfo:
    """Read a video's header: rate, frame count, whether its rate is constant. ``VideoError`` if unusable."""
    try:
        with av.open(file, mode="r") as container:
            stream = _video_stream(container)
            rate = stream.average_rate or stream.guessed_rate
            if not rate:
                raise VideoError("no frame rate in the video stream")
            frames = stream.frames or None
            exact = frames is not None
            if frames is None and stream.duration is not None and stream.time_base is not None:
                frames = math.ceil(stream.duration * stream.time_base * rate)
            elif frames is None and container.duration is not None:
                frames = math.ceil(container.duration / av.time_base * rate)
            constant = stream.guessed_rate is not None and stream.average_rate == stream.guessed_rate
            splittable = bool(constant) and container.format.name not in _NO_PRESENTATION_TIMESTAMPS
            return VideoInfo(fps=float(rate), frames=frames, exact_count=exact, splittable=splittable)
    except av.FFmpegError as exc:
        raise VideoError(one_line(exc)) from None


def decode_frames(
    file: BinaryIO,
    start: int,
    stop: int | None,
    sampling: Sampling,
    info: VideoInfo,
    fit: LetterboxSpec | None = None,
    threads: int = 1,
) -> Iterator[VideoFrame]:
    """The sampled frames with ``start <= index < stop`` (``stop`` None: to the end), in order.

    FFmpeg decodes and converts on ``threads`` threads: as many as the CPUs its caller holds. Left to itself it
    starts a thread per core of the node in every decode task (and frame threading keeps a decoded frame per
    thread); PyAV's own conversion (``frame.to_ndarray``) even gives each frame a converter with threads of its
    own, which live until the garbage collector frees the frame. And how a cut stream ends would depend on the
    count: with one thread the broken packet is an error, with several the stream just stops there. A fixed
    count, and one converter for the whole range, give the same frames and message on every node.

    With ``fit`` (``--decode fast``), FFmpeg scales each sampled frame to the letterbox's target size as it
    converts it to RGB (its fast bilinear filter): one pass over the full frame instead of a conversion and a
    resize. H.264 decoding itself costs most of a frame, so this gains little (docs/performance.md).

    Raises ``BrokenVideo`` where decoding breaks (FFmpeg names a cause), or where the stream ends before the
    frame count its container declares, after yielding every frame decoded before that point. Only the range the
    stream broke off in reports it (not a later range whose seek found nothing, or found only earlier frames
    before the break), so a broken video gives the same one error row however it was cut.
    """
    decoded, seen_any, cause = start, False, None
    try:
        with av.open(file, mode="r") as container:
            stream = _video_stream(container)
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            converter = _Converter(threads)
            for index, frame in _numbered(container, stream, start):
                if stop is not None and index >= stop:
                    return
                decoded, seen_any = index + 1, True
                if index < start or sampling.sample_number(index, info.fps) is None:
                    continue
                yield _displayed(frame, index, index / info.fps, fit, converter)
    except av.FFmpegError as exc:
        cause = exc.strerror or one_line(exc)
    except VideoError as exc:
        raise BrokenVideo(decoded, str(exc)) from None
    declared = min(stop if stop is not None else math.inf, info.frames or 0) if info.exact_count else 0
    short = cause is not None or decoded < declared
    if short and start <= decoded and (seen_any or start == 0):
        raise BrokenVideo(decoded, _ended(decoded, info, cause))


def _ended(decoded: int, info: VideoInfo, cause: str | None = None) -> str:
    """Where the stream broke off, one way whether FFmpeg named a cause or the stream just stopped short."""
    where = f"stream ended at frame {decoded}" + (f" of {info.frames}" if info.exact_count else "")
    return f"{where}: {cause}" if cause else where


class BrokenVideo(VideoError):
    """Decoding stopped early; ``at`` is the number of the first frame that could not be decoded."""

    def __init__(self, at: int, message: str) -> None:
        super().__init__(message)
        self.at = at


def _numbered(
    container: av.container.InputContainer, stream: av.VideoStream, start: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decoded frames with their sequential number: from timestamps after a seek to ``start``, or counted
    from the beginning when ``start`` is 0 or the seek did not land at or before it (a file with a poor index)."""
    if start > 0:
        after_seek = _after_seek(container, stream, start)
        first = next(after_seek, None)
        if first is None:
            return
        if first[0] <= start:
            yield first
            yield from after_seek
            return
        container.seek(stream.start_time or 0, stream=stream, backward=True, any_frame=False)
    yield from enumerate(container.decode(stream))


def _after_seek(
    container: av.container.InputContainer, stream: av.VideoStream, start: int
) -> Iterator[tuple[int, av.VideoFrame]]:
    rate = stream.average_rate or stream.guessed_rate
    if not rate or stream.time_base is None:  # probe_video marks such a stream unsplittable: never seeked
        raise VideoError("no frame rate or time base; cannot seek")
    origin = stream.start_time or 0
    container.seek(origin + int(Fraction(start) / (rate * stream.time_base)), stream=stream, backward=True)
    for frame in container.decode(stream):
        if frame.pts is None:
            raise VideoError("frame without a timestamp; cannot number frames after a seek")
        yield round((frame.pts - origin) * stream.time_base * rate), frame


@dataclass(frozen=True)
class _Converter:
    """FFmpeg's conversion to RGB (libswscale), set up once for a range and run on ``threads`` threads."""

    threads: int
    reformatter: VideoReformatter = field(default_factory=VideoReformatter)

    def rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
        """The frame as (H, W, 3) RGB; with ``size`` (width, height), scaled by FFmpeg's fast bilinear filter as
        it is converted (without, FFmpeg's default filter, which also upsamples the chroma)."""
        width, height = size or (None, None)
        interpolation = "FAST_BILINEAR" if size else None
        converted = self.reformatter.reformat(
            frame, width, height, format="rgb24", interpolation=interpolation, threads=self.threads
        )
        return converted.to_ndarray()


def _displayed(
    frame: av.VideoFrame, index: int, timestamp_s: float, fit: LetterboxSpec | None, converter: _Converter
) -> VideoFrame:
    """The frame's RGB pixels turned and mirrored as its display matrix says, the way FFmpeg's own player shows
    them; unchanged when it has none. FFmpeg's decoders copy the container's matrix onto every frame they give.
    With ``fit``, scaled first (in the stored orientation) to the target size of the displayed frame."""
    # PyAV's type stub lists only motion vectors among a frame's side data; at run time it maps every type.
    side_data = cast(Mapping[SideDataType, Buffer], frame.side_data)
    found = side_data.get(SideDataType.DISPLAYMATRIX)
    matrix = None if found is None else np.frombuffer(bytes(found), dtype=np.int32)
    turned = matrix is not None and _is_quarter_turn(matrix)
    full = (frame.width, frame.height) if turned else (frame.height, frame.width)
    if fit is None:
        image = converter.rgb(frame)
    else:
        height, width = target_size(*full, fit)
        image = converter.rgb(frame, (height, width) if turned else (width, height))
    if matrix is not None:
        image = _apply_display_matrix(image, matrix)
    return VideoFrame(index=index, timestamp_s=timestamp_s, image=image, full=full)


def _is_quarter_turn(matrix: np.ndarray) -> bool:
    """Whether the display matrix swaps width and height (b and c outweigh a and d; see ``_apply_display_matrix``)."""
    a, b, _, c, d = (int(v) for v in matrix[:5])
    return abs(b) + abs(c) > abs(a) + abs(d)


def _apply_display_matrix(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` ((H, W, ...)) as the FFmpeg display matrix ``matrix`` (9 int32s) shows it.

    The matrix maps a decoded pixel (x, y), y pointing down, to the displayed (a*x + c*y, b*x + d*y), up to a
    shift (a, b, c, d = matrix[0], [1], [3], [4], in 16.16 fixed point). For a quarter turn, with or without a
    mirror, two of them are 0 and the other two are +-1 times a scale: displayed x follows either decoded x (a, d)
    or decoded y (a transpose; c, b), and a negative sign flips that axis. These are exactly the transposes and
    flips FFmpeg's player and command line insert. A turn that is not a quarter turn (phones write only quarter
    turns) is taken as the nearest one: turning the pixels by another angle would need a larger canvas.
    """
    a, b, _, c, d = (int(v) for v in matrix[:5])
    if _is_quarter_turn(matrix):
        image, x_sign, y_sign = image.swapaxes(0, 1), c, b
    else:
        x_sign, y_sign = a, d
    return np.ascontiguousarray(image[:: -1 if y_sign < 0 else 1, :: -1 if x_sign < 0 else 1])


def _video_stream(container: av.container.InputContainer) -> av.VideoStream:
    if not container.streams.video:
        raise VideoError("no video stream")
    return container.streams.video[0]


_NO_PRESENTATION_TIMESTAMPS = frozenset({"avi"})


def _nearest(x: float) -> int:
    """Round half up (Python's ``round`` rounds half to even, which would make sampling depend on parity)."""
    return math.floor(x + 0.5)
