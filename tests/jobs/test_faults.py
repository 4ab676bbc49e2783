"""Crashes on a real local Ray: a model actor killed mid-run, the driver killed with its whole process group (the
same command run again at once taking its lease over) and run again, an input that kills the model's process, a
bug in the driver. The output ends with every frame once and the same detections, or, for the bug, stops at once and
resumes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.dataset as ds
import pytest

from jobs.commit.publish import Publisher
from jobs.pipeline import dataset as pipeline
from jobs.pipeline.execution import Retries
from jobs.pipeline.in_flight import POISON_DEATHS
from jobs.records.lease_record import LeaseRecord
from schemas import layout
from tests.conftest import REPO
from tests.support.job_runs import (
    commit_markers,
    expected_boxes,
    kill_group_when,
    output_boxes,
    photo_keys,
    rerun_command,
    run_detect,
)
from tests.support.parity import mismatches
from tests.support.photos import numbered_photos
from tests.support.poison import CrashingDetectStage, write_poison

pytestmark = pytest.mark.timeout(240)
"""Past the default: each test runs whole jobs through a fault and its recovery (25-60 s here, twice that on a busy
machine), and the first also waits for the session's Ray and super-gradients' predictions."""

SHARD_SIZE = 2
PHOTOS = 12
BATCH_SIZE = 4
"""Six shards in three decode blocks (a model batch each): results reach the driver in more than one burst, and a
kill after the first commit lands with most of the run still to do. The three faults that must land mid-run run
the probe at 640 (``coco_probe_weights``), where a model batch takes long enough for that on any machine; on the
small canvas the whole job's tests use, the last batches could be done before the fault."""


def _frames(out: Path) -> list[dict]:
    return ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coco_images) -> Path:
    return numbered_photos(tmp_path_factory.mktemp("fault-input") / "photos", coco_images, PHOTOS)


def _model_actor_pids() -> list[int]:
    """Live model actors of the session's Ray, which runs under this process: Ray titles an actor's process
    ``ray::<actor class>``. Another Ray on the machine (a two-node cluster's, a benchmark's) is left alone."""
    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:  # gone meanwhile
            continue
        if title.startswith("ray::") and "DetectStage" in title:
            pids.append(process.pid)
    return pids


def test_killed_model_actor_is_replaced_and_every_frame_lands_once(
    tmp_path, photos, coco_probe_weights, ray_cluster, coco_reference_predictions, coco_images
):
    """Also the job test of the torch runtime (a TorchScript model in the actor); the others run the CPU default,
    ONNX Runtime."""
    out = tmp_path / "out"
    result = {}
    options = {"shard_size": SHARD_SIZE, "batch_size": BATCH_SIZE, "runtime": "torch"}
    job = threading.Thread(target=lambda: result.update(run=run_detect([photos], out, coco_probe_weights, **options)))
    job.start()
    _wait_for(lambda: len(commit_markers(out)) >= 1 and _model_actor_pids(), 300, "a committed shard and a live actor")
    killed = _model_actor_pids()
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    assert len(commit_markers(out)) < PHOTOS // SHARD_SIZE, "the kill must land mid-run"
    job.join(timeout=600)
    assert not job.is_alive(), "the job hung after its actor was killed"
    run = result["run"]
    assert run.result.exit_code == 0, run.log
    assert run.result.manifest.attempts[-1].layout.runtime == "torch"
    frames = _frames(out)
    assert sorted(r["source_uri"] for r in frames) == sorted("file://" + str(p) for p in photos.iterdir())
    assert {r["status"] for r in frames} == {"ok"}
    assert mismatches(output_boxes(out), expected_boxes(photos, coco_reference_predictions, coco_images)) == []
    assert all(pid not in _model_actor_pids() for pid in killed)


STALL_TIMEOUT_S = 10
"""Well over what a model batch of ``BATCH_SIZE`` frames (1-3 s here) or a model actor's start (3-7 s) takes on a
busy 2-core machine: Ray Data's guard would take a slow batch for a stall, and the retry's actors must start within
the timeout."""
QUICK_RETRY = Retries(base_delay_s=0.1)
"""The retry after the stall without the production backoff, which waits for Ray to declare a lost node dead."""


def test_a_frozen_model_actor_is_noticed_within_the_stall_timeout_and_the_run_completes(
    tmp_path, photos, coco_probe_weights, ray_cluster
):
    """A model actor frozen mid-run (SIGSTOP: alive to Ray, never answering) stops the pipeline. The stall is
    noticed within ``--stall-timeout`` and a margin, said in the log, and the job's retry completes the run: every
    frame once, no hang."""
    out = tmp_path / "out"
    result = {}
    options = {"shard_size": SHARD_SIZE, "batch_size": BATCH_SIZE, "stall_timeout": STALL_TIMEOUT_S}
    job = threading.Thread(
        target=lambda: result.update(run=run_detect([photos], out, coco_probe_weights, retries=QUICK_RETRY, **options))
    )
    job.start()
    _wait_for(lambda: len(commit_markers(out)) >= 1 and _model_actor_pids(), 300, "a committed shard and a live actor")
    frozen = _model_actor_pids()
    try:
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        committed_at_stop = len(commit_markers(out))
        job.join(timeout=STALL_TIMEOUT_S + 240)
        ended_s = time.monotonic() - stopped_at
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert not job.is_alive(), "the job hung on a frozen actor"
    run = result["run"]
    assert run.result.exit_code == 0, run.log
    assert committed_at_stop < PHOTOS // SHARD_SIZE, "the freeze must land mid-run"
    assert "pipeline run failed: stalled" in run.log, run.log
    assert run.manifest.attempts[-1].pipeline_runs == 2
    # noticed at the timeout, retried after the first backoff, the rest done: no hang, no second stall
    assert ended_s < STALL_TIMEOUT_S + 90, f"the job ended {ended_s:.0f} s after the freeze:\n{run.log}"
    keys = sorted((r["source_uri"], r["frame_index"]) for r in _frames(out))
    assert keys == photo_keys(photos)


def _detect_command(photos: Path, out: Path, weights: Path) -> list[str]:
    return [
        sys.executable, "-m", "jobs.detect", str(photos), "--output", str(out), "--weights", str(weights),
        "--shard-size", str(SHARD_SIZE), "--batch-size", str(BATCH_SIZE),
    ]  # fmt: skip


@pytest.mark.timeout(300)  # the killed driver starts a local Ray of its own
def test_driver_killed_with_its_process_group_is_taken_over_at_once_and_resumes_to_predict(
    tmp_path, photos, coco_probe_weights, ray_cluster, coco_reference_predictions, coco_images, capsys
):
    """A driver that ran its own local Ray, killed with SIGKILL and its process group, as a laptop's run is: the
    same command run again at once (in the test's process) takes its lease over (epoch 2, said in one line), with no
    wait for the lease to expire, ends the killed run's lingering Ray workers, resumes, and ends with every frame
    once and, for each, the boxes super-gradients' ``predict()`` gives: what an uninterrupted run gives
    (``test_killed_model_actor_…``), without running one. (A driver whose Ray was a cluster's keeps the output until
    its lease expires: ``test_lease_job.py``.)"""
    out = tmp_path / "out"
    env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}  # a Ray of its own
    driver = subprocess.Popen(
        _detect_command(photos, out, coco_probe_weights),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_group_when(driver, lambda: len(commit_markers(out)) >= 1)
    committed_at_kill = len(commit_markers(out))
    assert 1 <= committed_at_kill < PHOTOS // SHARD_SIZE, "the kill must land mid-run"
    killed_holder = LeaseRecord.model_validate_json((out / layout.lease()).read_bytes())
    assert (killed_holder.pid, killed_holder.local_ray) == (driver.pid, True)
    run_folder = next(p for p in (out / "_runs").iterdir() if p.is_dir() and not p.name.startswith("_"))
    written = next((out / "frames").rglob("part-*.parquet"))
    stray = written.with_name(f"{written.name}.1234abcd.tmp")
    stray.write_bytes(b"partial")  # what a kill during a local write leaves

    rerun = rerun_command(_detect_command(photos, out, coco_probe_weights), capsys)
    assert rerun.code == 0, rerun.log
    took_over = f"took over the output from run {run_folder.name}: its process {driver.pid} on this host is gone"
    assert took_over in rerun.stdout.splitlines(), rerun.stdout
    attempts = json.loads((out / "_runs" / f"{run_folder.name}.json").read_text())["attempts"]
    # Committed work is not redone: what was committed at the kill, and what a publish of the killed run's still
    # running Ray worker committed after it (the lease was still its run's until taken over).
    committed_before = attempts[-1]["committed_shards_before"]
    assert committed_at_kill <= committed_before < PHOTOS // SHARD_SIZE
    assert f"{PHOTOS - SHARD_SIZE * committed_before} items to process" in rerun.stdout
    assert not stray.exists()
    keys = sorted((r["source_uri"], r["frame_index"]) for r in _frames(out))
    assert keys == photo_keys(photos)
    assert mismatches(output_boxes(out), expected_boxes(photos, coco_reference_predictions, coco_images)) == []
    runs = {p.name for p in (out / "_runs").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert runs == {run_folder.name}  # resumed, not replanned
    assert [a["lease_epoch"] for a in attempts] == [killed_holder.epoch, killed_holder.epoch + 1], "taken over"


def test_an_input_that_kills_every_model_process_gets_an_error_row_and_the_run_completes(
    tmp_path, coco_images, probe_weights, ray_cluster, monkeypatch
):
    """An input the model's process dies on each time (tests/support/poison.py: the process kills itself, as a
    segfault would): Ray restarts the actor and redoes the batch, the batch's frames run one at a time, and once
    the poison has killed a process twice alone it gets an error row. The same pipeline run completes every other
    frame: no shard fails, nothing is retried as a whole."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_poison(folder / "00-poison.png")
    for i, image in enumerate(coco_images[:2], start=1):
        (folder / f"0{i}-good.jpg").write_bytes(image.read_bytes())
    out = tmp_path / "out"
    monkeypatch.setattr(pipeline, "DetectStage", CrashingDetectStage)
    run = run_detect([folder], out, probe_weights, shard_size=2, max_error_rate=0.5)

    assert run.result.exit_code == 0, run.log
    manifest = run.manifest
    assert (manifest.status, manifest.failed_shards, manifest.attempts[-1].pipeline_runs) == ("completed", {}, 1)
    rows = {Path(r["source_uri"]).name: r for r in _frames(out)}
    assert sorted(rows) == sorted(p.name for p in folder.iterdir())
    poison = rows["00-poison.png"]
    assert poison["status"] == "error"
    assert poison["error"].startswith(f"model: its process died each time it ran this frame ({POISON_DEATHS} times)")
    assert {rows[n]["status"] for n in rows if n != "00-poison.png"} == {"ok"}
    assert manifest.counts.error_kinds == {"model": 1}


def test_a_bug_in_the_driver_stops_the_run_at_once_with_its_traceback(
    tmp_path, coco_images, probe_weights, ray_cluster, monkeypatch, capfd
):
    """An exception from the driver's own code is not retried: one pipeline run, exit 1, the traceback on stderr,
    and a rerun without the bug completes the run."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(coco_images[:2]):
        (folder / f"{i:02d}.jpg").write_bytes(image.read_bytes())
    out = tmp_path / "out"

    def broken(self, shard_id, files, items):
        raise ZeroDivisionError("a bug in the driver")

    monkeypatch.setattr(Publisher, "submit", broken)
    run = run_detect([folder], out, probe_weights, shard_size=1)
    assert run.result.exit_code == 1, run.log
    attempt = run.manifest.attempts[-1]
    assert attempt.pipeline_runs == 1
    assert attempt.error == "stopped by an error in the job, not retried: ZeroDivisionError: a bug in the driver"
    stderr = capfd.readouterr().err
    assert "Traceback (most recent call last)" in stderr and "in broken" in stderr

    monkeypatch.undo()
    rerun = run_detect([folder], out, probe_weights, shard_size=1)
    assert rerun.result.exit_code == 0, rerun.log
    assert sorted((r["source_uri"], r["frame_index"]) for r in _frames(out)) == photo_keys(folder)
