"""Two runs into one output, as overlapping cron runs start them: real ``python -m jobs.detect`` processes on the
session's Ray, into a local folder and into S3 (moto's server). One runs, the other exits 4 naming the holder,
and the output has every frame once. A holder killed with SIGKILL keeps the next run out until its lease expires:
``tests/jobs/test_faults.py``, whose killed driver's rerun is that next run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from common.errors import EXIT_BUSY
from jobs.records.lease_record import LeaseRecord
from schemas import layout
from tests.conftest import REPO
from tests.support.job_runs import assert_holder_named, photo_keys
from tests.support.photos import numbered_photos
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_client, s3_storage_options

PHOTOS = 12
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
