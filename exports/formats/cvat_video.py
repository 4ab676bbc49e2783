"""CVAT for video 1.1: one XML file per video, ``<stem>.xml`` (``track_formats.VideoStems``), each the
annotations of one CVAT task made from that video.

The layout follows CVAT's own export of a video task (``dump_as_cvat_interpolation``): ``<annotations>``,
``<version>1.1</version>``, a ``<meta>`` whose ``<task>`` is in ``interpolation`` mode with the frame range
(``start_frame`` 0, ``stop_frame`` the last frame, ``frame_filter`` ``step=N`` for a task of every Nth frame), the
labels and the ``original_size``, then the video's name as ``<source>``; then a ``<track id label source="auto">``
per track, its boxes in frame order.

Frames are the video's own 0-based ``frame_index``: CVAT writes and reads absolute frame numbers in this format and
maps them onto a task's frame filter itself, so the task must be made from the same video with start frame 0 and
the step in ``frame_filter``. A task with a step holds only the frames ``0, step, 2 × step, …`` and CVAT refuses a
box at any other frame, so the step is the sampling step only where every keyframe lies on that grid
(``--video-stride``); otherwise (``--video-fps``, whose steps are rounded) there is no filter and the task takes
every frame. Either way CVAT interpolates a track between its keyframes.

Each keyframe is a ``<box keyframe="1" outside="0">``. Where the object was not seen (a gap of more than one
sampling step, ``track_formats.stretch_ends``) and after the track's last keyframe, a box with ``outside="1"`` one
sampling step later ends the visible stretch, as CVAT ends a track itself; none past the video's last frame.
Corners have two decimals and each box carries its detection score as a ``score`` attribute, declared mutable (it
changes from one keyframe to the next; an immutable one CVAT keeps once per track).
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from common.storage import Location
from exports.formats.cvat import DEFAULT_SUBSET, SCORE_ATTRIBUTE, label_xml, task_head
from exports.records import Categories, Track, TrackWriter, VideoTracks
from exports.target import ExportTarget
from exports.track_formats import VideoStems, stretch_ends
from schemas.export_config import ExportConfig


def writer(config: ExportConfig, categories: Categories, target: Location) -> TrackWriter:
    return CvatVideoWriter(categories, target)


class CvatVideoWriter:
    """Each video's file is spooled and published when the video arrives (memory holds one track's boxes)."""

    def __init__(self, categories: Categories, target: Location) -> None:
        self._categories = categories
        self._labels = "".join(label_xml(name, mutable=True) for name in categories.names)
        self._target = ExportTarget(target)
        self._stems = VideoStems()
        self._files: list[str] = []

    def write(self, video: VideoTracks) -> None:
        name = f"{self._stems(video.name)}.xml"
        spool = self._target.spool(name)
        spool.write(document_head(video, self._labels))
        for track in video.tracks:
            spool.write(track_element(track, video, self._categories))
        spool.write("</annotations>\n")
        spool.publish()
        self._files.append(name)

    def close(self) -> list[str]:
        return self._files


def document_head(video: VideoTracks, labels: str) -> str:
    """The XML declaration, ``<annotations>``, the version and the meta of the video's task."""
    step = task_frame_step(video)
    frame_filter = f"step={step}" if step > 1 else ""
    return (
        task_head(video.name, len(range(0, video.frame_count, step)), "interpolation")
        + f"      <subset>{DEFAULT_SUBSET}</subset>\n"
        "      <start_frame>0</start_frame>\n"
        f"      <stop_frame>{video.frame_count - 1}</stop_frame>\n"
        f"      <frame_filter>{frame_filter}</frame_filter>\n"
        "      <labels>\n"
        f"{labels}"
        "      </labels>\n"
        "      <original_size>\n"
        f"        <width>{video.width}</width>\n"
        f"        <height>{video.height}</height>\n"
        "      </original_size>\n"
        "    </task>\n"
        f"    <source>{escape(video.name)}</source>\n"
        "  </meta>\n"
    )


def task_frame_step(video: VideoTracks) -> int:
    """The frame step of the CVAT task the file is for: the sampling step if every keyframe is on its grid from
    frame 0 (then so are the outside boxes, one step after a keyframe), else 1."""
    on_grid = all(not (track.frames % video.frame_step).any() for track in video.tracks)
    return video.frame_step if on_grid else 1


def track_element(track: Track, video: VideoTracks, categories: Categories) -> str:
    """``<track>`` with a keyframe box per detection and an ``outside`` box after each visible stretch."""
    boxes = []
    ends = stretch_ends(track.frames, video.frame_step)
    for frame, box, score, end in zip(track.frames.tolist(), track.boxes.tolist(), track.scores.tolist(), ends):
        boxes.append(_box(frame, box, score, outside=False))
        if end and frame + video.frame_step < video.frame_count:
            boxes.append(_box(frame + video.frame_step, box, score, outside=True))
    return (
        f'  <track id="{track.track_id}" label={quoteattr(categories.names[track.category])} source="auto">\n'
        f"{''.join(boxes)}"
        "  </track>\n"
    )


def _box(frame: int, box: list[float], score: float, outside: bool) -> str:
    """A keyframe box, in CVAT's attribute order, corners with two decimals as CVAT writes them."""
    x1, y1, x2, y2 = box
    return (
        f'    <box frame="{frame}" keyframe="1" outside="{int(outside)}" occluded="0" '
        f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" z_order="0">\n'
        f'      <attribute name="{SCORE_ATTRIBUTE}">{score:.4f}</attribute>\n'
        "    </box>\n"
    )
