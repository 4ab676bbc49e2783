"""The job as users run it on a cluster: a real Ray head from ``ray start --head`` on loopback, and
``ray job submit --working-dir . -- python -m jobs.detect …`` against it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.support.two_node import free_ports

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A Ray head started by the ``ray`` CLI from the project's environment, stopped at the end."""
    gcs, dashboard, agent, agent_grpc, env_agent, metrics, client, node, objects = free_ports(9)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [
            str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
            f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent}", f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--runtime-env-agent-port={env_agent}", f"--metrics-export-port={metrics}",
            f"--ray-client-server-port={client}", f"--node-manager-port={node}", f"--object-manager-port={objects}",
            "--num-cpus=2", "--num-gpus=0", f"--temp-dir={tmp_path_factory.mktemp('ray-head')}",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env, capture_output=True)
        if probe.returncode == 0:
            break
        if head.poll() is not None:
            pytest.fail(f"ray start --head exited: {head.stdout.read()[-2000:]}")
        time.sleep(2)
    else:
        head.terminate()
        pytest.fail("the Ray head's job server did not come up within 120 s")
    yield address, env
    head.terminate()
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, 9)


def test_ray_job_submit_runs_the_job_to_complete_output(ray_head, tmp_path, coco_images, probe_weights):
    address, env = ray_head
    images = tmp_path / "images"
    images.mkdir()
    for image in coco_images[:5]:
        (images / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    submit = subprocess.run(
        [
            str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".", "--",
            "python", "-m", "jobs.detect", str(images), "--output", str(out), "--weights", str(probe_weights),
            "--shard-size", "2",
        ],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    log = submit.stdout + submit.stderr
    assert submit.returncode == 0, log[-3000:]
    assert "succeeded" in log
    assert "5 ok, 0 error" in log
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table()
    assert frames.num_rows == 5
    assert set(frames.column("status").to_pylist()) == {"ok"}
    assert len(list((out / "_runs").glob("*/shards/*.json"))) == 3
