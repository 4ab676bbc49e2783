"""The job on a real two-node Ray cluster on this machine (``tests/support/two_node.py``), run as users run it
against a cluster (``python -m jobs.detect … --ray-address``): its model actors spread over both nodes, and
losing the second node mid-run (raylet, workers and agents killed at once) ends, without a hang, with every frame
exactly once and the boxes of super-gradients' ``predict()``.

Where actors run is read from the processes themselves rather than from the job, so the check does not depend
on how the pipeline reports placement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import psutil
import pyarrow.dataset as ds
import pytest

from tests.conftest import REPO
from tests.support.held_publish import released
from tests.support.job_runs import commit_markers, expected_boxes, output_boxes, photo_keys
from tests.support.parity import mismatches
from tests.support.photos import numbered_photos
from tests.support.two_node import Node, TwoNodeCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(360)]
"""Past the default: the two-node cluster's start (run alone) and a node loss's recovery, 40-80 s by the path Ray
takes."""

PHOTOS = 32
SHARD_SIZE = 4
SHARDS = PHOTOS // SHARD_SIZE
BATCH_SIZE = 4
"""Small batches, so that shards commit one after another and the node can be lost between commits."""
JOB_TIMEOUT_S = 300
"""Per command: a hang fails the test instead of the suite. Most of a run on a busy two-core machine is start-up."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, coco_images: list[Path]) -> Path:
    return numbered_photos(tmp_path_factory.mktemp("multinode-input") / "photos", coco_images, PHOTOS)


def _model_actors(node: Node) -> set[int]:
    """The node's model actor processes: Ray titles an actor's process ``ray::<actor class>``, here Ray Data's
    ``MapWorker(MapBatches(DetectStage))``."""
    actors = set()
    for process in node.processes():
        try:
            title = " ".join(process.cmdline())
        except psutil.Error:  # gone meanwhile
            continue
        if title.startswith("ray::") and "DetectStage" in title:
            actors.add(process.pid)
    return actors


@dataclass
class Job:
    """``python -m jobs.detect`` against the cluster, in a session of its own. A context manager: a job still
    running when the block ends (a failed assertion, a hang) is killed whole, so none outlives its test."""

    cluster: TwoNodeCluster
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def __enter__(self) -> Job:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.cluster.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def watch(self, until: Callable[[], bool], what: str, timeout_s: float = JOB_TIMEOUT_S) -> None:
        """Poll until ``until()`` or the job's end, whichever first; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not until() and self.process.poll() is None:
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout_s} s waiting for {what}; the job's output:\n{self.output()}")
            time.sleep(0.2)

    def finish(self) -> int:
        self.watch(lambda: False, "the job to end")
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def _command(
    photos: Path, out: Path, weights: Path, cluster: TwoNodeCluster, entry: tuple[str, ...] = ("jobs.detect",)
) -> list[str]:
    return [
        sys.executable, "-m", *entry, str(photos), "--output", str(out), "--weights", str(weights),
        "--ray-address", cluster.address, "--workers", "2", "--batch-size", str(BATCH_SIZE),
        "--shard-size", str(SHARD_SIZE),
    ]  # fmt: skip


def _frame_keys(out: Path) -> list[tuple[str, int]]:
    """(input, frame) of every ``frames`` row, sorted, duplicates kept; every row must be ``ok``."""
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table()
    assert set(frames.column("status").to_pylist()) == {"ok"}
    return sorted(zip(frames.column("source_uri").to_pylist(), frames.column("frame_index").to_pylist()))


def _duckdb_counts(out: Path) -> tuple[int, int]:
    """(rows, distinct frames) of the ``frames`` table as DuckDB reads it, through the hive partitions."""
    query = f"""select count(*), count(distinct (source_uri, frame_index))
                from read_parquet('{out}/frames/**/*.parquet', hive_partitioning=true)"""
    (rows, frames) = duckdb.sql(query).fetchall()[0]
    return rows, frames


def test_actors_spread_over_both_nodes_and_losing_one_mid_run_ends_with_every_frame_once(
    two_node: TwoNodeCluster,
    photos: Path,
    probe_weights: Path,
    tmp_path: Path,
    reference_predictions: dict[str, np.ndarray],
    coco_images: list[Path],
) -> None:
    """Model actors run on both nodes; then the second node is lost. Ray restarts the lost model actor on the head
    and redoes its batch, however long it takes to declare the node dead: the pipeline run itself survives (one
    pipeline run, no retry of the job's) and completes with exit 0."""
    out, held = tmp_path / "out", tmp_path / "held"
    # The shards after the first are published only once the node is lost, so that it is lost mid-run however fast
    # the machine (``tests/support/held_publish.py``).
    command = _command(photos, out, probe_weights, two_node, entry=("tests.support.held_publish", str(held)))
    with Job(two_node, command, tmp_path / "job.log") as job:
        job.watch(
            lambda: (
                (bool(commit_markers(out)) or held.exists())
                and bool(_model_actors(two_node.head))
                and bool(_model_actors(two_node.second))
            ),
            "a complete shard while model actors run on both nodes",
        )
        assert job.process.poll() is None, f"the job ended before the node could be lost:\n{job.output()}"
        two_node.second.kill()
        assert len(commit_markers(out)) < SHARDS, "the node must be lost mid-run"
        released(held).touch()
        assert job.finish() == 0, job.output()

    assert _frame_keys(out) == photo_keys(photos)
    assert _duckdb_counts(out) == (PHOTOS, PHOTOS)
    assert mismatches(output_boxes(out), expected_boxes(photos, reference_predictions, coco_images)) == []
    assert len(commit_markers(out)) == SHARDS
    (manifest,) = [json.loads(p.read_text()) for p in (out / "_runs").glob("*.json") if not p.name.startswith("_")]
    assert manifest["attempts"][-1]["pipeline_runs"] == 1, job.output()
