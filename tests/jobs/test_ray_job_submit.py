"""The job as users run it on a cluster: ``ray job submit --working-dir . -- python -m jobs.detect …`` against
the job server of a real Ray head started by ``ray start --head`` on loopback, with token authentication (the
session's two-node cluster, ``tests/jobs/conftest.py``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.conftest import REPO
from tests.support.two_node import TwoNodeCluster

BIN = Path(sys.executable).parent


@pytest.mark.timeout(240)  # run alone, it starts the two-node cluster before its job (35 s)
def test_ray_job_submit_runs_the_job_to_complete_output(two_node: TwoNodeCluster, tmp_path, coco_images, probe_weights):
    images = tmp_path / "images"
    images.mkdir()
    for image in coco_images[:5]:
        (images / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    submit = subprocess.run(
        [
            str(BIN / "ray"), "job", "submit", "--address", two_node.dashboard, "--working-dir", ".", "--",
            "python", "-m", "jobs.detect", str(images), "--output", str(out), "--weights", str(probe_weights),
            "--shard-size", "2",
        ],
        cwd=REPO, env=two_node.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = submit.stdout + submit.stderr
    assert submit.returncode == 0, log[-3000:]
    assert "succeeded" in log
    assert "5 ok, 0 error" in log
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table()
    assert frames.num_rows == 5
    assert set(frames.column("status").to_pylist()) == {"ok"}
    assert len(list((out / "_runs").glob("*/shards/*.json"))) == 3
