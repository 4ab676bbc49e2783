"""``detect --iceberg`` end to end on a real local Ray: two runs over a folder into one output and one SQLite
catalog. The first run's appends to ``frames`` fail (``tests/support/failing_catalog.py``), as a run killed between
its two Iceberg commits leaves the tables; the second, ``--incremental`` after a photo changed, adds each missing
shard once and its own, and the tables then hold exactly the rows ``export`` reads, one per frame."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

import jobs.commit.iceberg
from common.storage import location
from schemas.manifest import IcebergState
from tables import catalog as tables_catalog
from tables.catalog import open_catalog
from tests.support import failing_catalog
from tests.support.job_runs import run_detect
from tests.tables.conftest import added_shards, exported, table_rows
from yolonas_batch.cli import main

PHOTOS = 3


def _added(catalog, table: str) -> Counter:
    """(run, shard) -> how many appends of ``table`` added it."""
    return added_shards(catalog, "cams", table)


def test_the_tables_follow_the_runs_and_a_missed_publish_is_repaired_once(
    tmp_path: Path, coco_images, probe_weights, ray_cluster, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    folder, out, uri = tmp_path / "photos", tmp_path / "out", f"sqlite:///{tmp_path / 'catalog.db'}"
    folder.mkdir()
    for image in coco_images[:PHOTOS]:
        (folder / image.name).write_bytes(image.read_bytes())
    monkeypatch.setattr(jobs.commit.iceberg, "EVERY_SHARDS", 1)  # a publish after each commit, not only the end's
    monkeypatch.setattr(tables_catalog, "SqlCatalog", failing_catalog.FailingCatalog)
    monkeypatch.setattr(failing_catalog, "FAILING", {"frames"})
    options = {"shard_size": 1, "iceberg": uri, "iceberg_namespace": "cams", "incremental": True}

    first = run_detect([folder], out, probe_weights, **options)
    assert first.result.exit_code == 0, first.log
    assert first.manifest.counts.frames == PHOTOS, "the Parquet output is whole, whatever the tables"
    state = first.manifest.iceberg
    assert state is not None and (state.namespace, state.published_shards) == ("cams", 0)
    assert state.error == "CommitFailedException: injected: the commit to frames failed"
    assert f"iceberg: publish failed, tried again later: {state.error}" in first.log
    assert "the next run or 'yolonas-batch iceberg' adds the rest" in first.log
    catalog = open_catalog(uri, (out / "_iceberg").as_uri())
    run_a = first.manifest.run_id
    assert _added(catalog, "detections") == {(run_a, n): 1 for n in range(PHOTOS)} and not _added(catalog, "frames")

    failing_catalog.FAILING.clear()
    changed = folder / coco_images[0].name
    changed.write_bytes(coco_images[5].read_bytes())
    os.utime(changed, ns=(1, 1))
    second = run_detect([folder], out, probe_weights, **options)
    assert second.result.exit_code == 0, second.log
    run_b = second.manifest.run_id
    assert second.manifest.iceberg == IcebergState(namespace="cams", published_shards=1, error=None)
    assert "iceberg: cams.frames and cams.detections hold 1 of the run's 1 committed shards" in second.log
    assert "publish failed" not in second.log

    frames, boxes = table_rows(catalog, "cams")
    assert (frames, boxes) == exported(location(str(out)))
    assert len(frames) == PHOTOS == len({(uri, index) for _, uri, index, *_ in frames}), "one row per frame"
    assert [row[0] for row in frames if row[1].endswith(changed.name)] == [run_b]
    everything = {(run_a, 0): 1, (run_a, 1): 1, (run_a, 2): 1, (run_b, 0): 1}
    assert _added(catalog, "frames") == everything == _added(catalog, "detections"), "each shard added once"

    capsys.readouterr()
    assert main(["iceberg", str(out), "--catalog", uri, "--namespace", "cams"]) == 0
    assert "already hold every committed shard" in capsys.readouterr().out
