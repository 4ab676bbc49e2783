"""``detect --iceberg`` end to end on a real local Ray, into one output and one SQLite catalog. The first run's
driver, a process of its own on the session's Ray, is killed (SIGKILL, with its process group) between its two
Iceberg commits: its shards have their markers and are in ``detections``, not in ``frames``
(``tests/support/paused_iceberg.py``). The same command run again resumes it and adds each missing shard once; an
``--incremental`` run after a photo changed adds its own. The tables then hold exactly the rows ``export`` reads,
one per frame, as pyiceberg, DuckDB, Polars and Ray Data read them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from pyiceberg.catalog import Catalog

import jobs.commit.iceberg
from common.storage import location
from schemas import layout
from schemas.manifest import IcebergState
from tables.catalog import CATALOG_NAME, open_catalog
from tests.conftest import REPO
from tests.support.job_runs import commit_markers, expire_lease, kill_group_when, rerun_command, run_detect
from tests.tables.conftest import BOX_KEYS, FRAME_KEYS, added_shards, exported, table_rows
from yolonas_batch.cli import main

PHOTOS = 3
KEYS = {"frames": FRAME_KEYS.split(", "), "detections": BOX_KEYS.split(", ")}
"""The columns compared with ``export``'s, per table."""


def _added(catalog: Catalog, table: str) -> Counter:
    """(run, shard) -> how many appends of ``table`` added it."""
    return added_shards(catalog, "cams", table)


def _committed(out: Path) -> set[tuple[str, int]]:
    """(run, shard) of every commit marker in ``out``."""
    markers = (layout.parse_marker(str(path.relative_to(out / layout.RUNS))) for path in commit_markers(out))
    return {(marker.run_id, int(marker.shard_id)) for marker in markers if marker is not None}


def _read_back(catalog: Catalog, uri: str) -> dict[str, tuple[list[tuple], ...]]:
    """Each reader's frames and boxes (``KEYS``' columns), sorted: pyiceberg's scan with DuckDB over its Arrow,
    Polars' ``scan_iceberg`` and Ray Data's ``read_iceberg`` (on the session's Ray, opening the catalog itself)."""
    import polars as pl  # seconds of imports, for this test only: not at the collection of every test
    import ray.data

    polars = [pl.scan_iceberg(catalog.load_table(f"cams.{t}")).select(k).collect().rows() for t, k in KEYS.items()]
    ray_data = [
        [
            tuple(row[key] for key in keys)
            for row in ray.data.read_iceberg(
                table_identifier=f"cams.{table}", catalog_kwargs={"name": CATALOG_NAME, "type": "sql", "uri": uri}
            )
            .select_columns(keys)
            .take_all()
        ]
        for table, keys in KEYS.items()
    ]
    readers = {"pyiceberg and DuckDB": table_rows(catalog, "cams"), "Polars": polars, "Ray Data": ray_data}
    return {reader: tuple(sorted(rows) for rows in tables) for reader, tables in readers.items()}


@pytest.mark.timeout(240)  # a driver process of its own, then two runs in the test's process
def test_a_run_killed_between_its_iceberg_commits_is_repaired_once_and_every_reader_reads_exports_rows(
    tmp_path: Path, coco_images, probe_weights, ray_cluster, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder, out, uri = tmp_path / "photos", tmp_path / "out", f"sqlite:///{tmp_path / 'catalog.db'}"
    folder.mkdir()
    for image in coco_images[:PHOTOS]:
        (folder / image.name).write_bytes(image.read_bytes())
    options = {"shard_size": 1, "iceberg": uri, "iceberg_namespace": "cams", "incremental": True}
    command = [
        sys.executable, "-m", "jobs.detect", str(folder), "--output", str(out), "--weights", str(probe_weights),
        "--shard-size", "1", "--iceberg", uri, "--iceberg-namespace", "cams", "--incremental",
    ]  # fmt: skip
    paused, log = tmp_path / "paused", tmp_path / "killed.log"
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    with log.open("wb") as sink:
        driver = subprocess.Popen(
            [sys.executable, "-m", "tests.support.paused_iceberg", str(paused), *command[3:]],
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        kill_group_when(driver, paused.exists, timeout_s=200)
    assert paused.exists(), f"killed before its frames commit:\n{log.read_text()}"
    killed = _committed(out)
    [run_a] = {run for run, _ in killed}
    assert killed == {(run_a, n) for n in range(PHOTOS)}, "killed after its last marker"
    catalog = open_catalog(uri, (out / "_iceberg").as_uri())
    assert _added(catalog, "detections") == {shard: 1 for shard in killed} and not _added(catalog, "frames")
    expire_lease(out)  # the killed driver joined a Ray it did not start: its lease would hold the output until then

    resumed = rerun_command(command, capsys)  # the same command: it resumes the killed run, with nothing to detect
    assert resumed.code == 0, resumed.log
    assert f"run {run_a}: {PHOTOS} inputs" in resumed.stdout and "0 items to process" in resumed.stdout
    assert f"iceberg: cams.frames and cams.detections hold {PHOTOS} of the run's {PHOTOS} committed shards" in (
        resumed.stdout
    )
    assert _added(catalog, "frames") == {shard: 1 for shard in killed} == _added(catalog, "detections")

    monkeypatch.setattr(jobs.commit.iceberg, "EVERY_SHARDS", 1)  # a publish after each commit, not only the end's
    changed = folder / coco_images[0].name
    changed.write_bytes(coco_images[5].read_bytes())
    os.utime(changed, ns=(1, 1))
    second = run_detect([folder], out, probe_weights, **options)
    assert second.result.exit_code == 0, second.log
    run_b = second.manifest.run_id
    assert second.manifest.iceberg == IcebergState(namespace="cams", published_shards=1, error=None)
    assert "iceberg: cams.frames and cams.detections hold 1 of the run's 1 committed shards" in second.log
    assert "publish failed" not in second.log
    everything = {**{shard: 1 for shard in killed}, (run_b, 0): 1}
    assert _added(catalog, "frames") == everything == _added(catalog, "detections"), "each shard added once"

    frames, boxes = expected = tuple(sorted(rows) for rows in exported(location(str(out))))
    assert len(frames) == PHOTOS == len({(source, index) for _, source, index, *_ in frames}), "one row per frame"
    assert [row[0] for row in frames if row[1].endswith(changed.name)] == [run_b]
    assert len(boxes) == sum(row[4] for row in frames) > 0
    monkeypatch.setenv("POLARS_ICEBERG_PLANNER", "pyiceberg")  # its own planner, a plugin, is not installed
    for reader, rows in _read_back(catalog, uri).items():
        assert rows == expected, reader

    capsys.readouterr()
    assert main(["iceberg", str(out), "--catalog", uri, "--namespace", "cams"]) == 0
    assert "already hold every committed shard" in capsys.readouterr().out
