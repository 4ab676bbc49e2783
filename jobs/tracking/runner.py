"""One ``track`` run: plan the videos, skip those whose tracks are committed, track the rest as Ray tasks (one per
video), and tell what was done with an exit code.

A video is tracked whole in one task: the tracker runs at thousands of frames per second per core, far faster
than the detector that made its rows (docs/performance.md), so cutting a video into ranges and stitching their
tracks would buy nothing and cost tracks broken at range boundaries. The run holds the output's lease, like
``detect``: no two runs write one output, and the videos are planned under it, so no other run changes the files
they are planned from. A task whose process dies (a node lost) is retried by Ray a few times; an error in a video's
own data fails that video, recorded and told, and the others go on. SIGTERM, SIGINT and SIGHUP stop a run in order
(``jobs.stopping``): no new task, the videos being tracked given ``--stop-grace``, the rest cancelled and waited
for before the cleanup, and the signal's exit code. With ``--iceberg`` the committed tracks are published to the
tables ``tracks`` and ``track_summaries`` as ``detect``'s shards are (``jobs.commit.iceberg``), each time before
the cleanup removes the files of older versions, which the tables may still hold.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from common.cli import PROG
from common.committed_files import require_output
from common.errors import EXIT_FAILED, EXIT_OK
from common.progress import Progress
from common.storage import Location, location
from jobs.commit.iceberg import IcebergPublisher, open_target
from jobs.pipeline.ray_address import owns_local_ray
from jobs.records.fence import Fence
from jobs.records.lease import LeaseLost, RunLease
from jobs.records.lease_holder import took_over
from jobs.records.run_store import RunStore
from jobs.stopping import Stopped, StopSignals, end_tasks, exit_code
from jobs.tracking.committer import TrackCommitter
from jobs.tracking.plan import VideoWork, plan_videos
from schemas import layout
from schemas.manifest import IcebergState, TrackCommit
from schemas.track_config import TrackConfig, TrackerSettings
from workers.errors import one_line

TASK_RETRIES = 3
"""Times Ray runs a video's task again after its process died; an exception in the task is never retried."""
IN_FLIGHT_PER_CPU = 2
"""Tasks submitted ahead per CPU of the cluster: enough to keep every CPU busy, few enough that a large collection
is not one huge submission."""


@dataclass
class TrackResult:
    videos: int
    skipped: int
    """Videos whose tracks of the same detections and settings were committed already."""
    commits: list[TrackCommit] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Video URI -> why its tracking failed."""
    removed: int = 0
    wall_s: float = 0.0
    stopped_by: str | None = None
    """The signal that stopped the run before every video was tracked (``SIGTERM``), or None."""
    iceberg: IcebergState | None = None
    """What the last publish to the Iceberg tables did (``--iceberg``); None without them."""

    @property
    def exit_code(self) -> int:
        if self.stopped_by is not None:
            return exit_code(self.stopped_by)
        return EXIT_FAILED if self.failed else EXIT_OK

    def lines(self, out: Location) -> list[str]:
        tracks = sum(c.tracks for c in self.commits)
        boxes = sum(c.boxes for c in self.commits)
        frames = sum(c.frames for c in self.commits)
        ended = f"stopped by {self.stopped_by}" if self.stopped_by else "failed" if self.failed else "done"
        lines = [
            f"track {ended}: {len(self.commits)} of {self.videos} videos tracked now "
            f"({self.skipped} already tracked), {tracks} tracks of {boxes} boxes over {frames} frames; "
            f"{len(self.failed)} failed",
            f"  tracks in {out.uri}/tracks, one row per track in {out.uri}/track_summaries",
            f"  export them: yolonas-batch export {out.uri} --format label-studio-video|cvat-video|mot --to DEST",
        ]
        if self.removed:
            lines.append(f"  removed {self.removed} files of older or unfinished tracks")
        if self.stopped_by:
            lines.append("  the same command tracks the rest")
        if self.iceberg is not None:
            lines.append(_iceberg_line(self.iceberg))
        lines += [f"  failed: {uri}: {why}" for uri, why in sorted(self.failed.items())[:10]]
        lines.append(f"  wall time {self.wall_s:.1f}s")
        return lines


def run_tracking(config: TrackConfig, stream: TextIO | None = None) -> TrackResult:
    """Track the videos of ``config.output``. Raises ``UsageError`` (nothing to track, not a job output, unknown
    run) before any write, ``LeaseHeld``/``LeaseLost`` when another run holds or takes the output, ``Stopped`` when
    a stop signal came before the videos were planned."""
    with StopSignals("track", config.stop_grace) as stop:
        return _run_tracking(config, stream or sys.stdout, stop)


def _run_tracking(config: TrackConfig, stream: TextIO, stop: StopSignals) -> TrackResult:
    started = time.monotonic()
    out = location(config.output, config.storage_options)
    with stop.raising():
        require_output(out)  # before the lease, which writes into OUT
        target = open_target(config, out)
    with RunLease(out, RunStore.new_run_id(), config.lease_ttl, local_ray=owns_local_ray(config.ray_address)) as lease:
        if lease.taken_from is not None:
            print(took_over(lease.taken_from), file=stream, flush=True)
        with stop.raising():
            works = plan_videos(out, config.run_id, config.settings)
        iceberg = IcebergPublisher(target, out, lease.run_id, lease.fence, stream, tables=layout.TRACK_TABLES)
        iceberg.publish()  # what an earlier run committed but never published, before the cleanup removes the
        # files of the older versions the tables may still hold
        committer = TrackCommitter(out, lease.fence)
        done = committer.committed_keys()
        removed = committer.clean({w.video_id: w.key for w in works})
        pending = [w for w in works if w.key not in done]
        result = TrackResult(videos=len(works), skipped=len(works) - len(pending), removed=removed)
        print(
            f"tracking {len(pending)} of {len(works)} videos of {config.run_id or out.uri} "
            f"({result.skipped} already tracked)",
            file=stream,
            flush=True,
        )
        try:
            if pending:
                _track(config, out, pending, lease, result, stream, stop, iceberg)
        except Stopped:
            pass  # told by ``stop.stopped_by`` below
        lease.check()
        result.iceberg = iceberg.publish()
        result.removed += committer.clean({w.video_id: w.key for w in works})
    if stop.stopped_by is not None and len(result.commits) < len(pending):
        result.stopped_by = stop.stopped_by
    result.wall_s = time.monotonic() - started
    return result


def _track(
    config: TrackConfig,
    out: Location,
    pending: list[VideoWork],
    lease: RunLease,
    result: TrackResult,
    stream: TextIO,
    stop: StopSignals,
    iceberg: IcebergPublisher,
) -> None:
    """Run one task per video, a bounded number at a time, until all finished, nothing finished for
    ``stall_timeout`` seconds, or a stop signal came (the tasks running then get the grace). Each video committed
    counts towards ``iceberg``'s next publish."""
    import ray

    from jobs.pipeline.ray_session import cluster_cpus, start_ray

    with stop.raising():
        start_ray(config.ray_address)
    task = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(_track_task)
    progress = Progress(sum(w.frames for w in pending), stream=stream)
    queue = list(reversed(pending))
    running: dict[Any, VideoWork] = {}
    limit = max(1, cluster_cpus() * IN_FLIGHT_PER_CPU)
    fence = lease.fence
    try:
        while queue or running:
            while queue and len(running) < limit:
                work = queue.pop()
                running[task.remote(out, work, config.settings, fence)] = work
            with stop.raising():
                ready, _ = ray.wait(list(running), num_returns=1, timeout=config.stall_timeout)
            if lease.lost is not None:
                raise LeaseLost(lease.lost)
            if not ready:
                for work in _end(running, 0.0, result, progress):
                    result.failed[work.source_uri] = f"stalled: no video finished in {config.stall_timeout:g} s"
                break
            for ref in ready:
                if _record(ref, running.pop(ref), result, progress) is not None:
                    iceberg.committed()
    except Stopped:
        _end(running, stop.grace_s, result, progress)  # the videos cancelled are tracked by the next run
    finally:
        progress.close()


def _end(running: dict[Any, VideoWork], grace_s: float, result: TrackResult, progress: Progress) -> list[VideoWork]:
    """Let the tasks of ``running`` end within ``grace_s``, their outcomes recorded; cancel the others and wait for
    them to end, so that nothing writes once the run cleans up. Returns the videos cancelled."""
    ended, cancelled = end_tasks(list(running), grace_s)
    for ref in ended:
        _record(ref, running.pop(ref), result, progress)
    return [running.pop(ref) for ref in cancelled]


def _record(ref: Any, work: VideoWork, result: TrackResult, progress: Progress) -> TrackCommit | None:
    commit = _outcome(ref, work, result)
    progress.advance(work.frames, commit.error_frames if commit else 0)
    return commit


def _outcome(ref: Any, work: VideoWork, result: TrackResult) -> TrackCommit | None:
    """The task's commit, or its failure recorded; a lost lease ends the run."""
    import ray

    try:
        commit = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, LeaseLost):
            raise exc.cause from None
        result.failed[work.source_uri] = one_line(exc.cause if exc.cause is not None else exc, keep="first")
        return None
    except ray.exceptions.RayError as exc:  # its process died more times than it was retried
        result.failed[work.source_uri] = one_line(exc, keep="first")
        return None
    result.commits.append(commit)
    return commit


def _track_task(out: Location, work: VideoWork, settings: TrackerSettings, fence: Fence) -> TrackCommit:
    from jobs.tracking.track_video import track_video

    return track_video(out, work, settings, fence)


def _iceberg_line(state: IcebergState) -> str:
    """How many videos' tracks the Iceberg tables hold, and why they may lack some when the last publish failed."""
    line = f"  iceberg: {state.namespace}.tracks and {state.namespace}.track_summaries hold the tracks of "
    line += f"{state.published_shards} videos"
    if state.error is None:
        return line
    return f"{line}; the last publish failed ({state.error}): the next run or '{PROG} iceberg' adds the rest"
