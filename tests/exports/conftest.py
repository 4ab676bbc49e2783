"""Job outputs to export and report, shared by the tests of ``exports/``: one real run of the job, and synthetic
outputs.

``job_output`` runs the real job once per session (local Ray, probe weights) on inputs that give every kind of
row an export or the report meets: photos in nested folders with spaces and non-ASCII names, a blank photo (no
boxes), a file that is not an image with a hostile name (an ``error`` row) and a short H.264 video (frames named
``<video>/frame_NNNNNN.jpg``). ``synthetic_output`` is an output made without a model (``tests/support/two_runs.py``)
holding what a real run cannot easily be made to write: two runs over the same inputs, an uncommitted shard.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import cv2
import duckdb
import numpy as np
import pytest

from common.storage import location
from schemas.config import JobConfig
from tests.support.two_runs import RUN_A, RUN_B, commit_newer_run, commit_older_run
from tests.support.videos import encode_h264, photo_frames

PHOTOS = 5
VIDEO_FRAMES = 6
HOSTILE_FILE = "<img src=x onerror=alert(1)>.jpg"
"""Not an image, and markup in its name: an error row whose name must never reach a page unescaped."""


@pytest.fixture(scope="session")
def job_output(tmp_path_factory, coco_images, probe_weights, ray_cluster) -> SimpleNamespace:
    """The job's output of one real run over ``inputs`` (shard size 2, so several shards and files)."""
    from jobs.runner import run_job  # Ray and the model stack: only for the tests that use this fixture

    root = tmp_path_factory.mktemp("export-job")
    inputs = root / "inputs"
    for i, photo in enumerate(coco_images[:PHOTOS]):
        folder = inputs / ("cam one" if i % 2 else "день 2")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"photo {i}.jpg").write_bytes(photo.read_bytes())
    cv2.imwrite(str(inputs / "blank.png"), np.full((120, 160, 3), 128, np.uint8))
    (inputs / HOSTILE_FILE).write_bytes(b"this is not an image")
    (inputs / "clips").mkdir()
    encode_h264(inputs / "clips" / "clip.mp4", photo_frames(coco_images[5:], VIDEO_FRAMES, size=(320, 240)), fps=6)
    config = JobConfig(
        sources=[str(inputs)],
        output=str(root / "out"),
        weights=str(probe_weights),
        shard_size=2,
        decode_workers=1,
        max_error_rate=1.0,
    )
    log = io.StringIO()
    result = run_job(config, stream=log)
    assert result.exit_code == 0, log.getvalue()
    return SimpleNamespace(
        out=root / "out", inputs=inputs, run_id=result.manifest.run_id, manifest=result.manifest, log=log.getvalue()
    )


def output_rows(out: Path | str, query: str) -> list[tuple]:
    """``query`` over an output's tables, read independently of the export (DuckDB on the Parquet files):
    ``frames`` and ``detections`` name the tables, all their rows (a single run's output needs no dedupe)."""
    tables = {t: f"read_parquet('{out}/{t}/**/*.parquet', hive_partitioning = false)" for t in ("frames", "detections")}
    return duckdb.sql(query.format(**tables)).fetchall()


@pytest.fixture(scope="session")
def synthetic_output(tmp_path_factory) -> SimpleNamespace:
    """Two runs into one output, without a model (``tests.support.two_runs``)."""
    out = location(str(tmp_path_factory.mktemp("synthetic") / "out"))
    commit_older_run(out)
    commit_newer_run(out)
    return SimpleNamespace(out=out, path=out.path, runs=(RUN_A, RUN_B))
