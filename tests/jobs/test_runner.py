"""The job end to end on a real local Ray: real photos in awkward folders to Parquet read back three ways."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import duckdb
import numpy as np
import pyarrow.dataset as ds
import pytest

from tests.conftest import copy_tree_with_awkward_names
from tests.support.job_runs import run_detect
from tests.support.parity import mismatches


@pytest.fixture(scope="module")
def coco_run(tmp_path_factory, coco_images, probe_weights, ray_cluster):
    root = tmp_path_factory.mktemp("coco")
    mapping = copy_tree_with_awkward_names(coco_images, root / "input")
    run = run_detect([root / "input"], root / "out", probe_weights, shard_size=10, decode_workers=1)
    run.mapping = mapping
    return run


def _sql(query: str) -> list[tuple]:
    return duckdb.sql(query).fetchall()


def test_every_photo_is_one_ok_frame_row(coco_run):
    assert coco_run.result.exit_code == 0, coco_run.log
    frames = ds.dataset(coco_run.out / "frames", format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(frames) == 38
    assert sorted(frames.source_uri) == sorted(coco_run.mapping)
    assert set(frames.status) == {"ok"} and frames.error.isna().all()
    assert (frames.frame_index == 0).all() and frames.timestamp_s.isna().all()
    assert set(frames.run_id) == {coco_run.manifest.run_id}
    for row in frames.itertuples():
        image = cv2.imread(str(coco_run.mapping[row.source_uri]))
        assert (row.height, row.width) == image.shape[:2]


def test_duckdb_reads_both_tables_with_hive_partitions(coco_run):
    out = coco_run.out
    frames = f"read_parquet('{out}/frames/**/*.parquet', hive_partitioning=true)"
    detections = f"read_parquet('{out}/detections/**/*.parquet', hive_partitioning=true)"
    (count, sources, dates) = _sql(f"select count(*), count(distinct source), min(run_date)::varchar from {frames}")[0]
    assert count == 38 and sources == 1 and dates == coco_run.manifest.run_date
    disagreements = _sql(
        f"""select f.source_uri, f.num_detections, count(d.source_uri)
            from {frames} f left join {detections} d using (source_uri, frame_index)
            group by all having f.num_detections != count(d.source_uri)"""
    )
    assert disagreements == []
    (boxes, images_with_boxes) = _sql(f"select count(*), count(distinct source_uri) from {detections}")[0]
    assert boxes == coco_run.manifest.counts.detections > 0
    assert images_with_boxes >= 10


def test_boxes_lie_inside_their_images(coco_run):
    out = coco_run.out
    outside = _sql(
        f"""select count(*) from read_parquet('{out}/detections/**/*.parquet', hive_partitioning=true) d
            join read_parquet('{out}/frames/**/*.parquet', hive_partitioning=true) f using (source_uri, frame_index)
            where not (0 <= d.x1 and d.x1 <= d.x2 and d.x2 <= f.width and 0 <= d.y1 and d.y1 <= d.y2
                       and d.y2 <= f.height and d.score >= 0.25 and d.score <= 1)"""
    )
    assert outside == [(0,)]


def test_same_boxes_as_super_gradients_predict(coco_run, reference_predictions):
    table = ds.dataset(coco_run.out / "detections", format="parquet", partitioning="hive").to_table()
    ours: dict[str, list] = {}
    for row in table.to_pylist():
        original = "file://" + str(coco_run.mapping[row["source_uri"]].resolve())
        ours.setdefault(original, []).append([row[k] for k in ("x1", "y1", "x2", "y2", "score", "class_id")])
    ours_arrays = {k: np.array(v) for k, v in ours.items()}
    reference = {k: v for k, v in reference_predictions.items() if len(v)}
    assert sum(len(v) for v in reference.values()) > 0
    assert mismatches(ours_arrays, reference) == []
    names = set(table.column("class_name").to_pylist())
    assert names and names <= set(
        json.loads((coco_run.out / "_runs" / f"{coco_run.manifest.run_id}.json").read_text())["model"]["class_names"]
    )


def _default_layout(gpus: int, log: str) -> dict:
    """What a run without layout options gets: on CPUs one model actor, batches of 8, the runtime its log names
    the faster here (measured: it depends on the CPU, and on what else the machine was running then); on GPUs
    two actors per GPU, batches of 64, torch; two write tasks per actor, at least four."""
    if not gpus:
        runtime = re.search(r"^runtime: (\w+), the faster at fp32 here", log, re.MULTILINE)
        assert runtime is not None, log
        return {"device": "cpu", "batch_size": 8, "workers": 1, "runtime": runtime[1], "write_workers": 4}
    return {"device": "cuda", "batch_size": 64, "workers": 2 * gpus, "runtime": "torch", "write_workers": 4 * gpus}


def test_manifest_records_config_model_counts_and_versions(coco_run, probe_weights, ray_cluster):
    manifest = json.loads((coco_run.out / "_runs" / f"{coco_run.manifest.run_id}.json").read_text())
    assert manifest["status"] == "completed"
    assert manifest["model"]["weights_sha256"] == hashlib.sha256(probe_weights.read_bytes()).hexdigest()
    assert manifest["model"]["precision"] == "fp32"
    assert manifest["counts"]["frames"] == 38 and manifest["counts"]["ok"] == 38
    assert manifest["plan"]["inputs"] == 38 and manifest["plan"]["shards"] == 4
    assert set(manifest["shards"].values()) == {"committed"}
    assert {"python", "torch", "ray", "super-gradients"} <= set(manifest["versions"])
    assert manifest["config"]["shard_size"] == 10 and manifest["config"]["decode_workers"] == 1
    attempt = manifest["attempts"][-1]
    assert attempt["layout"] == _default_layout(int(ray_cluster.cluster_resources().get("GPU", 0)), coco_run.log)
    # Start-up from the job's start, and from the process's (the test session's, so minutes earlier).
    assert 0 < attempt["startup_s"] < attempt["wall_s"] < attempt["process_startup_s"]


def test_summary_names_counts_and_output(coco_run):
    assert "38 ok, 0 error" in coco_run.log
    assert f"output: file://{coco_run.out}" in coco_run.log
    assert "frames/s" in coco_run.log


def test_rerun_resumes_and_redoes_nothing(coco_run, probe_weights):
    before = {p: p.stat().st_mtime_ns for p in coco_run.out.rglob("*.parquet")}
    again = run_detect([Path(s) for s in coco_run.config.sources], coco_run.out, probe_weights, shard_size=10)
    assert again.result.exit_code == 0
    assert again.manifest.run_id == coco_run.manifest.run_id
    assert "0 items to process" in again.log
    assert {p: p.stat().st_mtime_ns for p in coco_run.out.rglob("*.parquet")} == before
    assert again.manifest.counts.frames == 38


def test_bad_files_become_error_rows(tmp_path, coco_images, probe_weights, ray_cluster):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.jpg").write_bytes(coco_images[0].read_bytes())
    (folder / "truncated.jpg").write_bytes(coco_images[1].read_bytes()[:200])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not media")
    run = run_detect([folder], tmp_path / "out", probe_weights)
    frames = ds.dataset(tmp_path / "out" / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    by_name = {Path(r["source_uri"]).name: r for r in frames}
    assert set(by_name) == {"good.jpg", "truncated.jpg", "empty.png"}
    assert by_name["good.jpg"]["status"] == "ok"
    assert by_name["empty.png"]["error"] == "decode: empty file"
    assert by_name["truncated.jpg"]["error"].startswith("decode: ")
    for name in ("empty.png", "truncated.jpg"):
        assert by_name[name]["status"] == "error" and by_name[name]["width"] is None
        assert by_name[name]["num_detections"] == 0
    assert run.result.exit_code == 3  # 2 of 3 failed, above the default --max-error-rate
    assert run.manifest.counts.error_kinds == {"decode": 2}
    assert run.manifest.plan.skipped == {"not media": 1}


def test_overwrite_replaces_the_job_output_and_leaves_other_files(tmp_path, coco_images, probe_weights, ray_cluster):
    """``--overwrite`` plans afresh (a plain rerun would resume the finished run) over an output holding only the
    new run: its rows once each, no row, file or manifest of the old one, and the user's own files untouched."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for image in coco_images[:3]:
        (folder / image.name).write_bytes(image.read_bytes())
    out = tmp_path / "out"
    first = run_detect([folder], out, probe_weights, shard_size=2, decode_workers=1)
    assert first.result.exit_code == 0, first.log
    mine = {out / "notes.txt": b"the user's", out / "reports" / "by-hand.parquet": b"not the job's"}
    for path, data in mine.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    second = run_detect([folder], out, probe_weights, shard_size=2, decode_workers=1, overwrite="model")
    assert second.result.exit_code == 0, second.log
    old, new = first.manifest.run_id, second.manifest.run_id
    assert new != old and second.manifest.counts.frames == 3
    frames = ds.dataset(out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted(r["source_uri"] for r in frames) == sorted("file://" + str(p) for p in folder.iterdir())
    assert {r["run_id"] for r in frames} == {new}
    detections = ds.dataset(out / "detections", format="parquet", partitioning="hive").to_table()
    assert set(detections.column("run_id").to_pylist()) == {new}
    assert detections.num_rows == second.manifest.counts.detections == first.manifest.counts.detections > 0
    job_files = [p for table in ("frames", "detections", "_runs") for p in (out / table).rglob("*")]
    assert job_files and not [p for p in job_files if old in p.name]
    runs = sorted(p.name for p in (out / "_runs").iterdir() if not p.name.startswith("_lease"))
    assert runs == [new, f"{new}.json", "_epochs", "_index"]
    assert "removed 1 earlier run(s) of this model and their rows" in second.log
    assert {path: path.read_bytes() for path in mine} == mine


def test_a_usage_error_found_on_the_cluster_exits_2_with_the_attempt_recorded(
    tmp_path, coco_images, probe_weights, ray_cluster, capsys
):
    """``--device cuda`` on a cluster without GPUs can only be told once Ray is up: still a usage error (the CLI's
    exit 2, one line), not a failed job, and the attempt says why in the manifest."""
    from common.errors import EXIT_USAGE
    from jobs.cli import detect_main

    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(coco_images[0].read_bytes())
    out = tmp_path / "out"
    command = [str(folder), "--output", str(out), "--weights", str(probe_weights), "--device", "cuda"]
    code = detect_main(command, "detect")
    assert code == EXIT_USAGE
    assert capsys.readouterr().err == "detect: error: --device cuda was asked for but this machine has no GPU\n"
    (manifest,) = [json.loads(p.read_text()) for p in (out / "_runs").glob("*.json") if not p.name.startswith("_")]
    assert manifest["attempts"][-1]["error"] == "usage: --device cuda was asked for but this machine has no GPU"


@pytest.mark.slow
def test_fast_decode_runs_camera_photos_in_their_full_size(tmp_path, large, probe_weights, ray_cluster):
    """``--decode fast`` through the whole job: the rows keep each photo's full, upright size and its boxes lie in
    those pixels; the run's model fingerprint names the decode."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in large:
        (photos / path.name).write_bytes(path.read_bytes())
    run = run_detect([photos], tmp_path / "out", probe_weights, decode="fast")
    assert run.result.exit_code == 0, run.log
    frames = ds.dataset(run.out / "frames", format="parquet", partitioning="hive").to_table().to_pylist()
    sizes = {Path(row["source_uri"]).name: (row["height"], row["width"]) for row in frames}
    assert sizes == {path.name: cv2.imread(str(path)).shape[:2] for path in large}
    boxes = ds.dataset(run.out / "detections", format="parquet", partitioning="hive").to_table().to_pylist()
    assert boxes, "the probe weights find objects in the photos"
    for box in boxes:
        height, width = sizes[Path(box["source_uri"]).name]
        assert 0 <= box["x1"] <= box["x2"] <= width and 0 <= box["y1"] <= box["y2"] <= height
    assert run.manifest.model_fingerprint != run.config.model_copy(update={"decode": "exact"}).model_fingerprint(
        run.manifest.model.weights_sha256
    )
