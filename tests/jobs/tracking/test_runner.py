"""``track`` as a scheduler runs it: killed mid-run with its process group, then run again, it resumes and every
video's tracks land once, equal to those of a run never interrupted; another run holding the output is exit 4;
bad input is one line and exit 2, before anything is written."""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from common.errors import EXIT_SIGTERM
from common.storage import location
from jobs.records.lease import LeaseHeld, RunLease
from jobs.tracking.plan import plan_videos
from jobs.tracking.track_video import track_video
from schemas import layout
from schemas.choices import DEFAULT_STOP_GRACE_S
from schemas.track_config import TrackerSettings
from tests.support.job_runs import expire_lease, kill_group_when, lease_released, wait_until
from tests.support.outputs import Frame, commit_run, run_id

REPO = Path(__file__).resolve().parents[3]
VIDEOS = 10
FRAMES = 2500
OBJECTS = 6
LEASE_TTL_S = 60
"""The killed run's lease, backdated for the rerun rather than waited out (``expire_lease``): long, so that it
surely still holds at the in-process check after the kill."""


def _videos() -> dict[str, list[Frame]]:
    """``VIDEOS`` videos of ``OBJECTS`` boxes gliding right, each video in two shards: long enough that tracking
    them takes seconds, so a kill lands between the first video committed and the last."""
    shards: dict[str, list[Frame]] = {}
    for v in range(VIDEOS):
        frames = [
            Frame(
                f"file:///data/cam/clip{v:02d}.mp4",
                [
                    ("person", 0.9, 10 + i * 0.2 + o * 150, 20 + o * 10, 90 + i * 0.2 + o * 150, 200)
                    for o in range(OBJECTS)
                ],
                index=i,
                width=1280,
                height=720,
            )
            for i in range(FRAMES)
        ]
        shards[f"{2 * v:05d}"], shards[f"{2 * v + 1:05d}"] = frames[: FRAMES // 2], frames[FRAMES // 2 :]
    return shards


@pytest.fixture(scope="module")
def detected(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("track-runner") / "out"
    commit_run(location(str(out)), run_id(3), _videos(), source="cam")
    return out


def _track(out: Path, *options: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "yolonas_batch", "track", str(out), "--lease-ttl", str(LEASE_TTL_S), *options]
    return subprocess.Popen(
        command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _tracks(out: Path) -> list[tuple]:
    table = ds.dataset(out / "tracks", format="parquet", partitioning="hive").to_table()
    keys = ("source_uri", "track_id", "frame_index", "class_id", "score", "x1", "y1", "x2", "y2")
    return sorted(tuple(row[k] for k in keys) for row in table.to_pylist())


def _markers(out: Path) -> list[Path]:
    return sorted((out / "_runs" / "_tracks").glob("*.json"))


@pytest.mark.slow
@pytest.mark.timeout(240)  # three track runs and a reference: over the default on a busy machine
def test_killed_then_stopped_track_resumes_and_every_video_lands_once(detected, tmp_path, ray_cluster, capsys):
    """Killed with SIGKILL, its lease keeps the output until it expires; the run after that, stopped by SIGTERM,
    lets its videos in flight finish, releases the lease and exits 143; the next (the same command line, in the
    test's process on the session's Ray) resumes at once and completes."""
    reference = tmp_path / "reference"
    shutil.copytree(detected, reference)
    settings = TrackerSettings()
    for work in plan_videos(location(str(reference)), None, settings):
        track_video(location(str(reference)), work, settings)
    out = tmp_path / "out"
    shutil.copytree(detected, out)
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}

    kill_group_when(_track(out, env=env), lambda: bool(_markers(out)), timeout_s=240)
    done_at_kill = len(_markers(out))
    assert 1 <= done_at_kill < VIDEOS, "the kill must land mid-run"

    with pytest.raises(LeaseHeld) as held:  # the killed run's lease holds the output until it expires
        RunLease(location(str(out)), "20260103T090000Z-probe", ttl_s=LEASE_TTL_S).acquire()
    assert held.value.holder is not None and held.value.holder.run_id != "20260103T090000Z-probe"
    expire_lease(out)

    stopped = _track(out, env=env)
    assert wait_until(lambda: len(_markers(out)) > done_at_kill or stopped.poll() is not None, timeout_s=240)
    stopped.send_signal(signal.SIGTERM)
    stdout, stderr = stopped.communicate(timeout=DEFAULT_STOP_GRACE_S + 60)
    assert stopped.returncode == EXIT_SIGTERM, stdout + stderr
    assert "track: SIGTERM: stopping" in stderr and "Traceback" not in stderr and "SIGTERM received" not in stderr
    assert "track stopped by SIGTERM" in stdout
    done_at_stop = len(_markers(out))
    assert done_at_kill < done_at_stop < VIDEOS, "the stop must land mid-run"
    assert lease_released((out / layout.lease()).read_bytes()), "the stopped run released the lease"

    from jobs.tracking.cli import track_main

    code = track_main([str(out), "--lease-ttl", str(LEASE_TTL_S)])  # the same command, in the test's process
    stdout = capsys.readouterr().out
    assert code == 0, stdout
    skipped = int(re.search(r"\((\d+) already tracked\)", stdout)[1])  # type: ignore[index]
    assert skipped == done_at_stop  # committed videos are not redone; nothing ran on after the stop
    assert len(_markers(out)) == VIDEOS
    assert _tracks(out) == _tracks(reference)  # each row once, as an uninterrupted run wrote it
    parts = sorted(p.name for p in (out / "tracks").rglob("*.parquet"))
    assert parts == sorted(p.name for p in (reference / "tracks").rglob("*.parquet"))


@pytest.mark.slow
def test_a_track_run_while_another_holds_the_output_exits_4_and_writes_nothing(detected, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(detected, out)
    with RunLease(location(str(out)), "20260103T090000Z-holder", ttl_s=60):
        run = _track(out)
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 4, stdout + stderr
    assert "20260103T090000Z-holder" in stderr
    assert not (out / "tracks").exists() and not _markers(out)


@pytest.mark.parametrize(
    ("what", "argv", "message"),
    [
        ("no output", ["{missing}"], "does not exist"),
        ("unknown run", ["{out}", "--run-id", "20990101T000000Z-nope"], "--run-id 20990101T000000Z-nope: no such run"),
        ("photos only", ["{photos}"], "has no committed video frames to track"),
        ("bad setting", ["{out}", "--min-iou", "1.5"], "--min-iou:"),
        ("bad flag", ["{out}", "--frobnicate"], "unrecognized arguments"),
        # On an output without videos: the catalog is refused before the videos are planned, the lease or Ray.
        ("unopenable catalog", ["{photos}", "--iceberg", "sqlite:////no/such/c.db"], "--iceberg: cannot open sqlite:"),
        ("namespace alone", ["{photos}", "--iceberg-namespace", "cams"], "--iceberg-namespace needs --iceberg"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(what, argv, message, detected, tmp_path, capsys):
    from jobs.tracking.cli import track_main

    photos = tmp_path / "photos"
    commit_run(location(str(photos)), run_id(4), {"00000": [Frame("file:///data/a.jpg", [("dog", 0.9, 1, 1, 5, 5)])]})
    paths = {"missing": tmp_path / "missing", "out": detected, "photos": photos}
    code = track_main([arg.format(**paths) for arg in argv])
    err = capsys.readouterr().err
    assert code == 2, what
    assert err.count("\n") == 1 and message in err, err
    assert not (photos / "tracks").exists()


@pytest.mark.slow
def test_detect_with_track_tracks_the_videos_and_passes_over_photos(tmp_path, ray_cluster, capsys):
    from jobs.cli import track_after
    from schemas.config import JobConfig
    from tables.catalog import open_catalog

    clip = tmp_path / "clip"
    frames = [Frame("file:///data/clip.mp4", [("car", 0.9, 10 + i, 10, 60 + i, 40)], index=i) for i in range(12)]
    commit_run(location(str(clip)), run_id(3), {"00000": frames})
    photos = tmp_path / "photos"
    commit_run(location(str(photos)), run_id(4), {"00000": [Frame("file:///data/a.jpg", [("dog", 0.9, 1, 1, 5, 5)])]})

    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    assert track_after(JobConfig(sources=["unused"], output=str(clip), iceberg=catalog), "detect") == 0
    assert len(_markers(clip)) == 1 and len(_tracks(clip)) == 12
    tables = open_catalog(catalog, (clip / "_iceberg").as_uri())
    assert tables.load_table("clip.tracks").scan().to_arrow().num_rows == 12, "--iceberg's tables get the tracks"
    assert track_after(JobConfig(sources=["unused"], output=str(photos)), "detect") == 0
    assert "detect --track: nothing to track" in capsys.readouterr().out
    assert not (photos / "tracks").exists()


@pytest.mark.slow
def test_tracks_of_an_output_in_s3_land_in_it_once_and_export_from_it(
    s3_endpoint, s3_bucket, s3_environment, ray_cluster
):
    from exports.run import run_export
    from jobs.tracking.runner import run_tracking
    from schemas.export_config import ExportConfig
    from schemas.track_config import TrackConfig
    from tests.support.s3 import s3_client, s3_storage_options

    uri, options = f"s3://{s3_bucket}/out", s3_storage_options(s3_endpoint)
    frames = [
        Frame(f"s3://{s3_bucket}/in/clip.mp4", [("car", 0.9, 10 + i, 10, 60 + i, 40)], index=i) for i in range(20)
    ]
    commit_run(location(uri, options), run_id(3), {"00000": frames[:10], "00001": frames[10:]})
    config = TrackConfig(output=uri, storage_options=options)

    first, again = run_tracking(config, stream=io.StringIO()), run_tracking(config, stream=io.StringIO())

    assert (len(first.commits), first.failed, len(again.commits), again.skipped) == (1, {}, 0, 1)
    run_export(ExportConfig(output=uri, format="mot", to=f"s3://{s3_bucket}/mot", storage_options=options))
    body = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key="mot/clip/gt/gt.txt")["Body"].read().decode()
    assert [line.split(",")[:3] for line in body.splitlines()] == [
        [str(i + 1), "1", f"{10 + i:.2f}"] for i in range(20)
    ]
