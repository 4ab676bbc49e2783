"""Two runs into one output, as overlapping cron runs start them: real ``python -m jobs.detect`` processes on the
session's Ray, into a local folder and into S3 (moto's server). One runs, the other exits 4 naming the holder,
and the output has every frame once. A holder killed with SIGKILL that ran on a cluster's Ray keeps the next run
out until its lease expires; one that ran its own local Ray is taken over at once (``tests/jobs/test_faults.py``,
whose killed driver's rerun is that next run). A store that ignores conditional writes refuses the run (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from common.errors import EXIT_BUSY, EXIT_USAGE
from common.storage import location
from jobs.cli import detect_main
from jobs.records import lease
from jobs.records.clock import SYSTEM_CLOCK
from jobs.records.lease_holder import this_process
from jobs.records.lease_record import LeaseRecord, stamp
from schemas import layout
from tests.conftest import REPO
from tests.support.job_runs import assert_holder_named, photo_keys
from tests.support.memory_lease_store import UnconditionalLeaseStore
from tests.support.photos import numbered_photos
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_client, s3_storage_options

PHOTOS = 6
SHARD_SIZE = 2
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coco_images) -> Path:
    return numbered_photos(tmp_path_factory.mktemp("lease-input") / "photos", coco_images, PHOTOS)


def _start(photos: Path, out: str, weights: Path, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    command = [
        sys.executable, "-m", "jobs.detect", str(photos), "--output", out, "--weights", str(weights),
        "--shard-size", str(SHARD_SIZE), *options,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _env(ray_cluster, **extra: str) -> dict[str, str]:
    return {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address, **extra}


def _race(photos: Path, out: str, weights: Path, env: dict[str, str], *options: str) -> tuple[str, str]:
    """Two runs started at the same moment: (the finished run's log, the refused run's stderr)."""
    runs = [_start(photos, out, weights, env, *options) for _ in range(2)]
    try:
        results = [(run.wait(timeout=TIMEOUT_S), *run.communicate()) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, EXIT_BUSY], results
    finished = next(r for r in results if r[0] == 0)
    refused = next(r for r in results if r[0] == EXIT_BUSY)
    return finished[1] + finished[2], refused[2]


def _keys(dataset: ds.Dataset) -> list[tuple[str, int]]:
    table = dataset.to_table(columns=["source_uri", "frame_index"])
    return sorted(zip(table.column("source_uri").to_pylist(), table.column("frame_index").to_pylist()))


def test_two_runs_started_together_into_one_folder_one_runs_the_other_exits_4(
    tmp_path, photos, probe_weights, ray_cluster
):
    out = tmp_path / "out"
    log, refused = _race(photos, str(out), probe_weights, _env(ray_cluster))
    assert_holder_named(refused)
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive")
    assert _keys(frames) == photo_keys(photos), log
    released = LeaseRecord.model_validate_json((out / layout.lease()).read_bytes())
    assert released.released, "the lease is released at exit (written back, so that epochs only grow)"


def test_two_runs_started_together_into_one_s3_prefix_one_runs_the_other_exits_4(
    photos, probe_weights, ray_cluster, s3_endpoint, s3_bucket
):
    out = f"s3://{s3_bucket}/out"
    options = ("--storage-options", json.dumps(s3_storage_options(s3_endpoint)))  # for the session's Ray workers too
    log, refused = _race(photos, out, probe_weights, _env(ray_cluster), *options)
    assert_holder_named(refused)
    s3 = pafs.S3FileSystem(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=s3_endpoint, region=REGION, scheme="http"
    )
    frames = ds.dataset(f"{s3_bucket}/out/frames", format="parquet", partitioning="hive", filesystem=s3)
    expected = sorted((f"file://{p}", 0) for p in photos.iterdir())
    assert _keys(frames) == expected, log
    lease = s3_client(s3_endpoint).get_object(Bucket=s3_bucket, Key=f"out/{layout.lease()}")["Body"].read()
    assert LeaseRecord.model_validate_json(lease).released, "the lease is released at exit"


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_a_killed_run_on_a_clusters_ray_keeps_the_output_until_its_lease_expires(tmp_path, photos, capsys):
    """Its process gone, but its tasks may outlive it on the cluster: the next run exits 4 naming it, before Ray
    starts (the address given is never dialled) and before it writes anything."""
    out = tmp_path / "out"
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=30)
    now = datetime.now(timezone.utc)
    killed = LeaseRecord(
        **{**this_process(), "pid": ended.pid, "pid_started": None},
        run_id="20261204T050000Z-aaaaaa",
        local_ray=False,
        epoch=1,
        acquired_at=stamp(now.timestamp() - 60),
        renewed_at=stamp(now.timestamp()),
        expires_at=stamp(now.timestamp() + 180),
        ttl_s=180.0,
        nonce="0123456789abcdef",
    )
    (out / "_runs").mkdir(parents=True)
    (out / layout.lease()).write_bytes(killed.dump())
    code = detect_main(
        [str(photos), "--output", str(out), "--weights", "unread.pth", "--ray-address", "192.0.2.1:6379"], "detect"
    )
    refused = capsys.readouterr().err
    assert code == EXIT_BUSY, refused
    assert_holder_named(refused.removeprefix("detect: "))
    assert f"run {killed.run_id} (host {killed.host}, pid {ended.pid})" in refused
    assert _files(out) <= {layout.lease(), layout.lease_lock(), layout.lease_write_lock()}


def test_a_store_that_ignores_conditional_writes_refuses_the_run_with_exit_2(tmp_path, photos, capsys, monkeypatch):
    """The store is the one seam: ``store_for`` hands the lease a test double that takes every write whatever its
    condition. One line, exit 2, before anything else is read or written (the weights are not even looked at)."""
    monkeypatch.setattr(lease, "store_for", lambda out, clock=SYSTEM_CLOCK, *_: UnconditionalLeaseStore(clock))
    out = tmp_path / "out"
    code = detect_main([str(photos), "--output", str(out), "--weights", "unread.pth"], "detect")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert err == (
        f"detect: error: the store of {location(str(out)).uri} ignores conditional writes: "
        "it accepted a second create of its lease, so it cannot keep two runs apart; write to a store that honours "
        "If-None-Match and If-Match on PUT\n"
    )
    assert _files(out) == set()
