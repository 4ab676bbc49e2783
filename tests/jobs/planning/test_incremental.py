"""``--incremental`` over a growing folder on a real local Ray: each run processes only what is new or
changed since the runs before it, a new model reprocesses everything, rows say which run wrote them, and each run
is folded into its model's answered-inputs index as it closes. Which inputs count as answered, and how the index
is kept, without Ray: ``test_answered_index.py``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds

from common.storage import location
from jobs.planning.answered_index import AnsweredIndex
from jobs.records.run_store import RunStore
from schemas.manifest import RunManifest
from tests.support.job_runs import run_detect


def _frames(out: Path) -> list[dict]:
    return ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()


def _index(out: Path, manifest: RunManifest) -> AnsweredIndex:
    return AnsweredIndex.read(RunStore(location(str(out))).index_location(manifest.model_fingerprint))


def test_incremental_runs_process_only_new_and_changed_inputs(tmp_path, coco_images, probe_weights, ray_cluster):
    folder, out = tmp_path / "bucket", tmp_path / "out"
    folder.mkdir()
    for image in coco_images[:4]:
        (folder / image.name).write_bytes(image.read_bytes())
    first = run_detect([folder], out, probe_weights, incremental=True)
    assert first.result.exit_code == 0 and first.manifest.counts.frames == 4
    assert _index(out, first.manifest).covers == {first.manifest.run_id}

    for image in coco_images[4:6]:
        (folder / image.name).write_bytes(image.read_bytes())
    changed = folder / coco_images[0].name
    changed.write_bytes(coco_images[10].read_bytes())
    os.utime(changed, ns=(1, 1))
    second = run_detect([folder], out, probe_weights, incremental=True)
    assert second.result.exit_code == 0, second.log
    assert "incremental: 3 of 6 inputs are new or changed" in second.log
    assert second.manifest.run_id != first.manifest.run_id and second.manifest.counts.frames == 3
    index = _index(out, second.manifest)
    assert index.covers == {first.manifest.run_id, second.manifest.run_id} and index.answers.num_rows == 7

    rows = _frames(out)
    by_run = Counter(r["run_id"] for r in rows)
    assert by_run == {first.manifest.run_id: 4, second.manifest.run_id: 3}
    assert [r["run_id"] for r in rows if r["source_uri"].endswith(coco_images[0].name)].count(
        second.manifest.run_id
    ) == 1

    nothing_new = run_detect([folder], out, probe_weights, incremental=True)
    assert "incremental: 0 of 6 inputs are new or changed" in nothing_new.log
    assert nothing_new.result.exit_code == 0 and nothing_new.manifest.counts.frames == 0

    new_model = run_detect([folder], out, probe_weights, incremental=True, conf=0.3)
    assert "incremental: 6 of 6 inputs are new or changed" in new_model.log
    assert new_model.result.exit_code == 0 and new_model.manifest.counts.frames == 6
