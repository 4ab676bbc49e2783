"""One video's committed detections, frame by frame in order, for the tracker: streamed, in bounded memory.

DuckDB reads only the video's part files (``VideoWork.inputs``), keeps the newest row of each frame (as ``export``
does), joins the boxes of that row's run, and sorts by frame: Python holds one Arrow batch and the frame being
assembled. A frame whose chosen row is an ``error`` is skipped (nothing is known of it: the tracker neither sees
nor misses anything there); an ``ok`` frame without boxes still ages the tracks.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from common.committed_files import BATCH_ROWS, connect, readable
from common.storage import Location
from jobs.tracking.plan import MEMORY_LIMIT, VideoWork
from schemas import layout
from schemas.tables import STATUS_OK
from workers.tracker import FrameBoxes

_QUERY = """
with chosen as (
    select run_id, frame_index, timestamp_s, width, height, status
    from read_parquet($frames, hive_partitioning = false) where source_uri = $uri
    qualify row_number() over (partition by frame_index order by run_id desc) = 1
), boxes as (
    select run_id, frame_index, class_id, class_name, score, x1, y1, x2, y2
    from read_parquet($detections, hive_partitioning = false) where source_uri = $uri
)
select c.frame_index, c.timestamp_s, c.width, c.height, c.status,
       b.class_id, b.class_name, b.score, b.x1, b.y1, b.x2, b.y2
from chosen c left join boxes b on b.run_id = c.run_id and b.frame_index = c.frame_index
order by c.frame_index, b.score desc, b.class_id, b.x1, b.y1, b.x2, b.y2
"""


@dataclass
class VideoStats:
    """What reading a video learnt of it, complete once its frames have all been read."""

    frames: int = 0
    """``ok`` frames, given to the tracker."""
    error_frames: int = 0
    detections: int = 0
    width: int = 0
    height: int = 0
    class_names: dict[int, str] = field(default_factory=dict)
    indices: list[int] = field(default_factory=list)
    """Every chosen frame's index, ``ok`` or not, in order."""

    @property
    def last_frame(self) -> int:
        return self.indices[-1] if self.indices else -1

    @property
    def frame_step(self) -> int:
        """Frames between two sampled frames: the median step, so a frame missing here and there does not count."""
        if len(self.indices) < 2:
            return 1
        return max(1, int(round(float(np.median(np.diff(self.indices))))))


class VideoRows:
    """The frames of one video to track (iterate once), and ``stats`` about them once read."""

    def __init__(self, out: Location, work: VideoWork, fps: float) -> None:
        self.out = out
        self.work = work
        self.fps = fps
        self.stats = VideoStats()

    def __iter__(self) -> Iterator[FrameBoxes]:
        files = [readable(self.out, self.out.child(name).path) for name in self.work.inputs]
        detections = [
            readable(self.out, self.out.child(layout.DETECTIONS, posixpath.relpath(name, layout.FRAMES)).path)
            for name in self.work.inputs
        ]
        scratch = tempfile.mkdtemp(prefix="yolonas-track-")
        try:
            db = connect(scratch, MEMORY_LIMIT, False, self.out)
            try:
                params = {"frames": files, "detections": detections, "uri": self.work.source_uri}
                carried: pa.Table | None = None
                for batch in db.sql(_QUERY, params=params).to_arrow_reader(BATCH_ROWS):
                    table = pa.Table.from_batches([batch])
                    if carried is not None:
                        table = pa.concat_tables([carried, table])
                    last = table.column("frame_index")[-1]
                    complete = pc.not_equal(table.column("frame_index"), last)
                    yield from self._frames(table.filter(complete))
                    carried = table.filter(pc.invert(complete))
                if carried is not None:
                    yield from self._frames(carried)
            finally:
                db.close()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _frames(self, table: pa.Table) -> Iterator[FrameBoxes]:
        """The frames of rows sorted by frame, each frame's rows all there."""
        if not table.num_rows:
            return
        indices = table.column("frame_index").to_numpy()
        starts = np.flatnonzero(np.r_[True, indices[1:] != indices[:-1]])
        ends = np.r_[starts[1:], len(indices)]
        has_box = table.column("class_id").is_valid().to_numpy(zero_copy_only=False)
        class_ids = table.column("class_id").fill_null(-1).to_numpy().astype(np.int32)
        scores = table.column("score").fill_null(0).to_numpy().astype(np.float32)
        boxes = np.stack(
            [table.column(c).fill_null(0).to_numpy().astype(np.float32) for c in ("x1", "y1", "x2", "y2")], axis=1
        )
        status = table.column("status").to_pylist()
        timestamps = table.column("timestamp_s").to_pylist()
        self._learn(table, has_box)
        for start, end in zip(starts, ends):
            index = int(indices[start])
            self.stats.indices.append(index)
            if status[start] != STATUS_OK:
                self.stats.error_frames += 1
                continue
            self.stats.frames += 1
            rows = np.arange(start, end)[has_box[start:end]]
            self.stats.detections += len(rows)
            timestamp = timestamps[start]
            yield FrameBoxes(
                frame_index=index,
                timestamp_s=index / self.fps if timestamp is None else float(timestamp),
                class_ids=class_ids[rows],
                scores=scores[rows],
                boxes=boxes[rows],
            )

    def _learn(self, table: pa.Table, has_box: np.ndarray) -> None:
        """The frame size (the largest seen: an error row has none) and the names of the classes met."""
        for name in ("width", "height"):
            seen = pc.max(table.column(name)).as_py()
            if seen is not None:
                setattr(self.stats, name, max(getattr(self.stats, name), int(seen)))
        named = table.filter(pa.array(has_box)).group_by(["class_id", "class_name"]).aggregate([])
        for row in named.to_pylist():
            self.stats.class_names[int(row["class_id"])] = row["class_name"]
