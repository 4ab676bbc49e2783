"""Running the job in the test's process, and what its output should hold: shared by every whole-job test."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Callable

import numpy as np
import pyarrow.dataset as ds
import pytest

from jobs.records.lease_record import TIME_FORMAT, LeaseRecord
from schemas import layout
from schemas.config import JobConfig
from workers.files import write_atomic

if TYPE_CHECKING:
    from jobs.pipeline.execution import Retries


def kill_group_when(process: subprocess.Popen, condition: Callable[[], bool], timeout_s: float = 300) -> None:
    """SIGKILL ``process`` with its whole process group once ``condition`` holds (or the process ended, or
    ``timeout_s`` passed), as an OOM killer or a lost node ends a driver: its caller checks where the kill landed."""
    deadline = time.monotonic() + timeout_s
    try:
        while not condition() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def wait_until(condition: Callable[[], object], timeout_s: float) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passed; whether it held (the caller says what it missed)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def expire_lease(out: Path) -> LeaseRecord:
    """Backdate the lease a killed run left on ``out`` to have expired a minute ago; its record as it was. A local
    lease expires by its ``expires_at`` on the reader's clock, so the next run takes it over as it would once the
    lease's TTL had passed, and the test need not wait that out. (The holder's ``flock`` went with its process.)"""
    lease = out / layout.lease()
    record = LeaseRecord.model_validate_json(lease.read_bytes())
    stamp = (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime(TIME_FORMAT)
    write_atomic(lease, record.model_copy(update={"renewed_at": stamp, "expires_at": stamp}).dump())
    return record


def lease_released(raw: bytes) -> bool:
    """Whether the lease record ``raw`` was released: a run that ends in order writes it back released rather than
    deleting it, so that epochs only grow."""
    return LeaseRecord.model_validate_json(raw).released


def assert_holder_named(refused: str) -> None:
    """``refused``, the stderr of a run that found the output held, is one line naming the holder."""
    line = refused.strip()
    assert "\n" not in line, refused
    for part in ("is in use by run ", "host ", "pid ", " since ", "expires "):
        assert part in line, line


def run_detect(
    sources: list[Path], out: Path, weights: Path, *, retries: Retries | None = None, **options
) -> SimpleNamespace:
    """``detect`` over ``sources`` into ``out`` (``options``: the config's fields; ``retries``: the job's own unless
    given), on the session's Ray: the run's result, manifest, output folder, console log and config."""
    from jobs.pipeline.execution import RETRIES  # Ray and the model stack: imported by the tests that run the job
    from jobs.runner import run_job

    config = JobConfig(sources=[str(s) for s in sources], output=str(out), weights=str(weights), **options)
    stream = io.StringIO()
    result = run_job(config, stream=stream, retries=retries or RETRIES)
    return SimpleNamespace(result=result, manifest=result.manifest, out=out, log=stream.getvalue(), config=config)


def rerun_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> SimpleNamespace:
    """``python -m jobs.detect ARGS…`` (``command``) run again through the same command line, in the test's process
    on the session's Ray: what a driver process of its own would do, without its start-up. Its exit ``code`` and
    ``stdout``/``stderr``."""
    from jobs.cli import detect_main

    assert command[1:3] == ["-m", "jobs.detect"], command
    code = detect_main(command[3:], prog="python -m jobs.detect")
    captured = capsys.readouterr()
    return SimpleNamespace(code=code, stdout=captured.out, stderr=captured.err, log=captured.out + captured.err)


def output_boxes(out: Path) -> dict[str, np.ndarray]:
    """The ``detections`` table as the parity check takes it: per input, an (N, 6) array (xyxy, score, class)."""
    boxes: dict[str, list] = {}
    for row in ds.dataset(out / "detections", format="parquet", partitioning="hive").to_table().to_pylist():
        boxes.setdefault(row["source_uri"], []).append([row[k] for k in ("x1", "y1", "x2", "y2", "score", "class_id")])
    return {uri: np.array(rows) for uri, rows in boxes.items()}


def commit_markers(out: Path) -> list[Path]:
    """The commit markers under ``out``, sorted: how many shards a run has committed so far."""
    return sorted(out.glob("_runs/*/shards/*.json"))


def photo_keys(photos: Path) -> list[tuple[str, int]]:
    """(source URI, frame index) of every photo in ``photos``, sorted: the frames a run over it must give."""
    return sorted(("file://" + str(p), 0) for p in photos.iterdir())


def expected_boxes(
    photos: Path, reference_predictions: dict[str, np.ndarray], coco_images: list[Path]
) -> dict[str, np.ndarray]:
    """super-gradients' own boxes for the ``NN-<photo name>`` copies in ``photos`` (``numbered_photos``), keyed by
    the copies' URIs; inputs without boxes left out, as the ``detections`` table leaves them out."""
    by_name = {p.name: "file://" + str(p.resolve()) for p in coco_images}
    expected = {"file://" + str(p): reference_predictions[by_name[p.name[3:]]] for p in sorted(photos.iterdir())}
    return {uri: boxes for uri, boxes in expected.items() if len(boxes)}
