"""Crashes on a real local Ray: a model actor killed mid-run, and the driver killed with its whole process
group and run again. Either way the output ends with every frame once and the same detections."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from jobs.pipeline import dataset as pipeline
from jobs.pipeline.detect_stage import DetectStage
from jobs.pipeline.execution import MAX_SHARD_ATTEMPTS
from tests.conftest import REPO
from tests.support.job_runs import commit_markers, expected_boxes, output_boxes, photo_keys, run_detect
from tests.support.parity import mismatches
from tests.support.photos import numbered_photos
from tests.support.poison import POISON, FailingDetectStage, log_records_keep_no_exceptions

SHARD_SIZE = 4
PHOTOS = 48
"""More than one block of work items (32), so results reach the driver in more than one burst and a kill
can land between commits."""


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
    """Processes of live model actors: Ray titles an actor's process ``ray::<actor class>``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::") and "DetectStage" in title:
            pids.append(int(proc.name))
    return pids


def test_killed_model_actor_is_replaced_and_every_frame_lands_once(
    tmp_path, photos, probe_weights, ray_cluster, reference_predictions, coco_images
):
    """Also the job test of the torch runtime (a TorchScript model in the actor); the others run the CPU default,
    ONNX Runtime."""
    out = tmp_path / "out"
    result = {}
    options = {"shard_size": SHARD_SIZE, "runtime": "torch"}
    job = threading.Thread(target=lambda: result.update(run=run_detect([photos], out, probe_weights, **options)))
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
    assert mismatches(output_boxes(out), expected_boxes(photos, reference_predictions, coco_images)) == []
    assert all(pid not in _model_actor_pids() for pid in killed)


def _detect_command(photos: Path, out: Path, weights: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jobs.detect",
        str(photos),
        "--output",
        str(out),
        "--weights",
        str(weights),
        "--shard-size",
        str(SHARD_SIZE),
    ]


def test_driver_killed_with_its_process_group_resumes_to_the_boxes_of_predict(
    tmp_path, photos, probe_weights, ray_cluster, reference_predictions, coco_images
):
    """Every frame once, and for each the boxes super-gradients' ``predict()`` gives: what an uninterrupted run
    gives (``test_killed_model_actor_…``), without running one."""
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    driver = subprocess.Popen(
        _detect_command(photos, out, probe_weights),
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: len(commit_markers(out)) >= 1 or driver.poll() is not None, 300, "a committed shard")
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    committed_at_kill = len(commit_markers(out))
    assert 1 <= committed_at_kill < PHOTOS // SHARD_SIZE, "the kill must land mid-run"
    run_folder = next(p for p in (out / "_runs").iterdir() if p.is_dir() and not p.name.startswith("_"))
    stray = out / "frames" / "leftover.parquet.1234abcd.tmp"
    stray.write_bytes(b"partial")  # what a kill during a local write leaves

    rerun = subprocess.run(
        _detect_command(photos, out, probe_weights), cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{PHOTOS - SHARD_SIZE * committed_at_kill} items to process" in rerun.stdout  # committed work not redone
    assert not stray.exists()
    keys = sorted((r["source_uri"], r["frame_index"]) for r in _frames(out))
    assert keys == photo_keys(photos)
    assert mismatches(output_boxes(out), expected_boxes(photos, reference_predictions, coco_images)) == []
    runs = {p.name for p in (out / "_runs").iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert runs == {run_folder.name}  # resumed, not replanned


def test_a_poison_input_fails_its_shard_alone_and_the_rest_commits(
    tmp_path, coco_images, probe_weights, ray_cluster, monkeypatch
):
    """An input the model stage fails on every time (tests/support/poison.py): the failing shard is isolated and
    reported with its root cause in one line, every other shard commits, and a rerun without the poison completes
    the run."""
    folder = tmp_path / "photos"
    folder.mkdir()
    names = [f"00-{POISON}.jpg", "01-good.jpg", "02-good.jpg"]  # sorted: the poison is shard 00000
    for name, image in zip(names, coco_images):
        (folder / name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    monkeypatch.setattr(pipeline, "DetectStage", FailingDetectStage)
    with log_records_keep_no_exceptions():
        run = run_detect([folder], out, probe_weights, shard_size=1, decode_workers=1)

    assert run.result.exit_code == 1, run.log
    manifest = run.manifest
    assert manifest.status == "failed"
    assert list(manifest.failed_shards) == ["00000"]
    cause = manifest.failed_shards["00000"]
    assert cause == f"RuntimeError: model stage crashed on 00-{POISON}.jpg"  # not Ray's wrappers around it
    assert manifest.error.startswith(f"1 shard(s) failed after {MAX_SHARD_ATTEMPTS} attempts; 00000: ")
    assert manifest.shards == {"00000": "failed", "00001": "committed", "00002": "committed"}
    assert {p.stem for p in commit_markers(out)} == {"00001", "00002"}
    assert sorted(r["source_uri"] for r in _frames(out)) == [f"file://{folder / n}" for n in names[1:]]
    assert manifest.counts.frames == 2
    saved = json.loads((out / "_runs" / f"{manifest.run_id}.json").read_text())
    assert (saved["status"], saved["failed_shards"]) == ("failed", {"00000": cause})

    monkeypatch.setattr(pipeline, "DetectStage", DetectStage)
    rerun = run_detect([folder], out, probe_weights, shard_size=1, decode_workers=1)
    assert rerun.result.exit_code == 0, rerun.log
    assert rerun.manifest.run_id == manifest.run_id and "1 items to process" in rerun.log
    assert (rerun.manifest.status, rerun.manifest.failed_shards) == ("completed", {})
    keys = sorted((r["source_uri"], r["frame_index"]) for r in _frames(out))
    assert keys == [(f"file://{folder / n}", 0) for n in names]
