"""Cut videos into frame ranges at planning time, so one long video spreads over every model actor.

Each video's header is probed once on the driver (a few ranged reads on an object store, in a thread pool).
A video that can be split is cut every ``segment_frames`` decoded frames; the last range stays open to the
end of the stream, so a frame count that is short never drops frames. A video that cannot be probed is
planned as one range: decoding it later records the error in its row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable

from common.storage import location
from workers.video import Sampling, VideoError, VideoInfo, probe_video

PROBE_THREADS = 16


@dataclass(frozen=True)
class Segment:
    """Decoded frames ``[start, stop)`` of one video; ``stop`` None means to the end of the stream."""

    start: int
    stop: int | None
    expected: int
    """Sampled frames the range is expected to give: the weight of the range when cutting shards."""
    info: VideoInfo | None
    """The probed header; None when probing failed."""


def plan_videos(
    uris: Iterable[str], sampling: Sampling, segment_frames: int, storage_options: dict[str, Any]
) -> dict[str, list[Segment]]:
    """Probe every video and cut it into segments: URI -> its segments, in frame order."""
    uris = list(uris)

    def probe(uri: str) -> VideoInfo | None:
        try:
            with location(uri, storage_options).open_input() as handle:
                return probe_video(handle)
        except (VideoError, OSError, ValueError):
            return None

    with ThreadPoolExecutor(max_workers=PROBE_THREADS) as pool:
        infos = list(pool.map(probe, uris))
    return {uri: segments_for(info, sampling, segment_frames) for uri, info in zip(uris, infos)}


def segments_for(info: VideoInfo | None, sampling: Sampling, segment_frames: int) -> list[Segment]:
    """The segments of one probed video (pure: the same header always cuts the same way)."""
    if info is None:
        return [Segment(0, None, 1, None)]
    last = sampling.last_index(info.fps)
    limit = last + 1 if last is not None else None
    end = min(x for x in (info.frames, limit) if x is not None) if (info.frames or limit) else None
    if not info.splittable or end is None:
        return [Segment(0, limit, max(1, sampling.expected(0, end or 1, info.fps)), info)]
    starts = list(range(0, end, segment_frames)) or [0]
    segments = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else limit
        expected = sampling.expected(start, stop if stop is not None else end, info.fps)
        segments.append(Segment(start, stop, max(1, expected), info))
    return segments
