"""The job as users run it on a cluster: ``ray job submit --working-dir . -- python -m jobs.detect …`` against
the job server of a real Ray head started by ``ray start --head`` on loopback, with token authentication (the
session's two-node cluster, ``tests/jobs/conftest.py``); stopped by ``ray job stop`` mid-run, then submitted again
to complete output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from schemas import layout
from tests.conftest import REPO
from tests.support.job_runs import commit_markers, lease_released, photo_keys, wait_until
from tests.support.photos import numbered_photos
from tests.support.two_node import TwoNodeCluster

BIN = Path(sys.executable).parent
PHOTOS = 8
SHARD_SIZE = 2
STOP_WAIT_S = 60
"""``RAY_JOB_STOP_WAIT_TIME_S`` for the job: how long ``ray job stop`` waits after SIGTERM before its SIGKILL (3 s by
default, less than the job's stop needs), set through the job's runtime environment, which its supervisor runs in."""


def _ray_job(two_node: TwoNodeCluster, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "ray"), "job", *args[:1], "--address", two_node.dashboard, *args[1:]]
    return subprocess.run(command, cwd=REPO, env=two_node.env, capture_output=True, text=True, timeout=timeout_s)


@pytest.mark.timeout(300)  # run alone, it starts the two-node cluster before its jobs (35 s)
def test_ray_job_stop_stops_the_job_in_order_and_a_second_submit_completes_it(
    two_node: TwoNodeCluster, tmp_path, coco_images, probe_weights
):
    photos = numbered_photos(tmp_path / "photos", coco_images, PHOTOS)
    out = tmp_path / "out"
    env = json.dumps({"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)}})
    held = tmp_path / "held"
    job = [
        str(photos), "--output", str(out), "--weights", str(probe_weights), "--shard-size", str(SHARD_SIZE),
        "--batch-size", "4", "--stop-grace", "2",
    ]  # fmt: skip
    submit = ["--working-dir", ".", "--runtime-env-json", env, "--", "python", "-m"]
    # The first job publishes its first shard and holds the others, so that the stop lands mid-run however fast
    # the machine (``tests/support/held_publish.py``); the grace then runs out and the held publishes are cancelled.
    first = [*submit, "tests.support.held_publish", str(held), *job]
    submitted = _ray_job(two_node, "submit", "--submission-id", "stopped", "--no-wait", *first)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    started = wait_until(lambda: commit_markers(out) and held.exists(), timeout_s=300)
    assert started, _ray_job(two_node, "logs", "stopped").stdout[-3000:]

    stop = _ray_job(two_node, "stop", "stopped", timeout_s=STOP_WAIT_S + 60)
    logs = _ray_job(two_node, "logs", "stopped").stdout
    assert stop.returncode == 0 and "stopped" in stop.stdout.lower(), stop.stdout + stop.stderr + logs[-3000:]
    assert "SIGTERM received" not in logs and "Traceback" not in logs, logs[-3000:]
    manifest = json.loads(next(p for p in (out / "_runs").glob("*.json") if layout.parse_manifest(p.name)).read_text())
    committed = len(commit_markers(out))
    assert committed == 1, "the held shards were never published"
    assert (manifest["status"], manifest["attempts"][-1]["stopped_by"]) == ("interrupted", "SIGTERM"), logs[-3000:]
    assert lease_released((out / layout.lease()).read_bytes())

    again = _ray_job(two_node, "submit", *submit, "jobs.detect", *job)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-3000:]
    assert "succeeded" in log
    assert f"{PHOTOS - SHARD_SIZE * committed} items to process" in log
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table(["source_uri", "frame_index"])
    assert sorted(zip(*frames.to_pydict().values())) == photo_keys(photos)
    assert len(commit_markers(out)) == PHOTOS // SHARD_SIZE
