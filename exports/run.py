"""One export from end to end: read the output, write the format, show progress, tell what was written.

The CLI (``exports.cli``) only parses; tests and other callers run an export with ``run_export``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO, cast

from common.progress import Progress
from common.storage import Location, location
from exports import formats
from exports.reader import open_output
from exports.records import FormatWriter, TrackWriter
from exports.target import ExportTarget
from exports.tracks_reader import TracksReader, open_tracks
from schemas.export_config import TRACK_FORMATS, ExportConfig

PROGRESS_EVERY = 1024
"""Frames between updates of the progress bar: a bar redrawn per frame would cost more than the frame."""


@dataclass(frozen=True)
class ExportSummary:
    format: str
    target: str
    frames: int
    video_frames: int
    boxes: int
    errors: int
    errors_included: bool
    runs: tuple[str, ...]
    root: str
    files: list[str]
    wall_s: float

    def lines(self) -> list[str]:
        errors = f"{self.errors} error frames " + (
            "passed on (--errors; docs/exports.md says how each format records them)"
            if self.errors_included
            else "left out"
        )
        runs = self.runs[0] if len(self.runs) == 1 else f"{len(self.runs)} runs, newest row per frame"
        lines = [
            f"export {self.format} done: {self.frames} frames, {self.boxes} boxes; {errors} (from {runs})",
            f"  written to {self.target}: {', '.join(self.files)}",
            f"  image names are relative to {self.root or '(no common folder: names start with the scheme)'}",
        ]
        if self.video_frames:
            lines.append(
                f"  {self.video_frames} video frames are named <video>/frame_NNNNNN.jpg by frame_index; extract "
                "them with: ffmpeg -i VIDEO -fps_mode passthrough -start_number 0 'VIDEO_NAME/frame_%06d.jpg'"
            )
        lines.append(f"  wall time {self.wall_s:.1f}s")
        return lines


@dataclass(frozen=True)
class TracksSummary:
    format: str
    target: str
    videos: int
    tracks: int
    boxes: int
    root: str
    files: list[str]
    wall_s: float

    def lines(self) -> list[str]:
        return [
            f"export {self.format} done: {self.videos} videos, {self.tracks} tracks of {self.boxes} boxes",
            f"  written to {self.target}: {', '.join(self.files)}",
            f"  video names are relative to {self.root or '(no common folder: names start with the scheme)'}",
            f"  wall time {self.wall_s:.1f}s",
        ]


def run_export(config: ExportConfig, *, stream: TextIO | None = None) -> ExportSummary | TracksSummary:
    """Export ``config.output`` to ``config.to``; ``UsageError`` (one line) for bad input, before any file."""
    stream = stream or sys.stdout
    started = time.monotonic()
    target = location(config.to, config.storage_options)
    if config.format in TRACK_FORMATS:
        tracks = open_tracks(config)  # its usage errors come before the target is touched
        ExportTarget(target).prepare()
        return _export_tracks(config, tracks, target, stream, started)
    ExportTarget(target).prepare()
    with open_output(config) as reader:
        selection = reader.selection
        print(
            f"exporting {selection.frames} frames of {reader.out.uri} as {config.format} to {target.uri}",
            file=stream,
            flush=True,
        )
        writer = cast(FormatWriter, formats.writer(config, reader.categories, target))
        progress = Progress(selection.frames, stream=stream)
        progress.errors = selection.errors  # the bar's "errors": error frames of the output, left out or not
        pending = video_frames = 0
        for record in reader:
            writer.write(record)
            video_frames += record.is_video
            pending += 1
            if pending == PROGRESS_EVERY:
                progress.advance(pending, 0)
                pending = 0
        progress.advance(pending, 0)
        progress.close()
        files = writer.close()
        return ExportSummary(
            format=config.format,
            target=target.uri,
            frames=selection.frames,
            video_frames=video_frames,
            boxes=reader.boxes,
            errors=selection.errors,
            errors_included=config.include_errors,
            runs=selection.runs,
            root=selection.root,
            files=files,
            wall_s=time.monotonic() - started,
        )


def _export_tracks(
    config: ExportConfig, reader: TracksReader, target: Location, stream: TextIO, started: float
) -> TracksSummary:
    print(
        f"exporting the tracks of {len(reader.commits)} videos of {reader.out.uri} as {config.format} to {target.uri}",
        file=stream,
        flush=True,
    )
    writer = cast(TrackWriter, formats.writer(config, reader.categories, target))
    boxes = 0
    for video in reader:
        writer.write(video)
        boxes += sum(len(track.frames) for track in video.tracks)
    return TracksSummary(
        format=config.format,
        target=target.uri,
        videos=len(reader.commits),
        tracks=reader.tracks,
        boxes=boxes,
        root=reader.root,
        files=writer.close(),
        wall_s=time.monotonic() - started,
    )
