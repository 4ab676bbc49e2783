"""``export`` on the command line: a summary on success; one line and exit 2 for every usage error; local and S3
(outputs read and exports written through the project's storage, against a real S3 API)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pycocotools.coco import COCO

from common.storage import location
from exports.cli import export_main
from exports.reader import open_output
from schemas.export_config import ExportConfig
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.s3 import s3_client, s3_storage_options
from tests.support.two_runs import DATA, RUN_A

REPO = Path(__file__).resolve().parents[2]
PROG = "yolonas-batch export"


def test_a_summary_counts_frames_boxes_and_errors(synthetic_output, tmp_path, capsys):
    code = export_main([synthetic_output.path, "--format", "coco", "--to", str(tmp_path / "x"), "--results"], PROG)
    out = capsys.readouterr().out
    assert code == 0
    assert "export coco done: 7 frames, 4 boxes; 1 error frames left out (from 2 runs, newest row per frame)" in out
    assert "annotations/instances_default.json, results_default.json" in out
    assert "image names are relative to file:///data/" in out
    assert "3 video frames are named <video>/frame_NNNNNN.jpg" in out and "-start_number 0" in out


def test_options_reach_the_export(synthetic_output, tmp_path, capsys):
    to = tmp_path / "x"
    argv = [synthetic_output.path, "--format", "yolo", "--to", str(to), "--run-id", RUN_A, "--min-score", "0.5"]
    argv += ["--classes", "person,car=vehicle,truck=vehicle", "--split", "train=0.8,val=0.2", "--errors"]
    assert export_main(argv, PROG) == 0, capsys.readouterr().err
    data = yaml.safe_load((to / "data.yaml").read_text())
    assert data["names"] == {0: "person", 1: "vehicle"} and data["val"] == "images/val"
    entries = [json.loads(line) for line in (to / "scores.jsonl").read_text().splitlines()]
    assert any("error" in e for e in entries), "--errors"
    assert all(s >= 0.5 for e in entries for s in e.get("scores", [])), "--min-score"
    assert len(entries) == 7, "run A alone: 6 ok frames and the error"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}", "--format", "coco", "--to", "{to}"], "does not exist"),
        (["{empty}", "--format", "coco", "--to", "{to}"], "is not a job output"),
        (["{out}", "--format", "coco", "--to", "{to}", "--run-id", "20200101T000000Z-000000"], "no such run"),
        (["{pending}", "--format", "yolo", "--to", "{to}"], "has no committed frames"),
        (["{out}", "--format", "coco", "--to", "{to}", "--classes", "zebra"], "'zebra' not among"),
        (["{out}", "--format", "coco", "--to", "{to}", "--split", "train=0.9"], "shares must sum to 1"),
        (["{out}", "--format", "coco", "--to", "{to}", "--min-score", "2"], "--min-score"),
        (["{out}", "--format", "coco", "--to", "{out}"], "is not empty"),
        (["{corrupt}", "--format", "coco", "--to", "{to}"], "cannot read"),
        (["{out}", "--format", "tiff", "--to", "{to}"], "invalid choice"),
        (["{out}", "--to", "{to}"], "required: --format"),
        (["{out}", "--format", "coco", "--to", "{to}", "--bogus"], "unrecognized arguments"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    paths = {name: tmp_path / name for name in ("missing", "empty", "out", "pending", "corrupt", "to")}
    paths["empty"].mkdir()
    for name in ("out", "corrupt"):
        commit_run(location(str(paths[name])), run_id(1), {"00000": [Frame(f"{DATA}/a.jpg")]})
    for part in paths["corrupt"].glob("frames/*/*/*.parquet"):
        part.write_bytes(b"PAR1 not really")
    commit_run(location(str(paths["pending"])), run_id(1), {"0": [Frame(f"{DATA}/a.jpg")]}, uncommitted=frozenset("0"))
    code = export_main([a.format(**paths) for a in argv], PROG)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith(f"{PROG}: error: ") and captured.err.count("\n") == 1, captured.err
    assert message in captured.err
    assert not paths["to"].exists() or not any(paths["to"].iterdir()), "nothing written"


def test_runs_as_a_command(synthetic_output, tmp_path):
    command = "import sys; from exports.cli import export_main; sys.exit(export_main(sys.argv[1:]))"
    ok = subprocess.run(
        [sys.executable, "-c", command, synthetic_output.path, "--format", "yolo", "--to", str(tmp_path / "x")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "export yolo done: 7 frames" in ok.stdout and (tmp_path / "x" / "data.yaml").exists()
    bad = subprocess.run(
        [sys.executable, "-c", command, str(tmp_path), "--format", "yolo", "--to", str(tmp_path / "y")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad.stderr


def test_an_output_in_s3_exports_to_s3(s3_endpoint, s3_bucket, s3_environment, synthetic_output, tmp_path, capsys):
    out = location(f"s3://{s3_bucket}/out", s3_storage_options(s3_endpoint))
    commit_run(out, run_id(1), {"00000": [Frame(f"s3://{s3_bucket}/in/a.jpg", [("car", 0.7, 5, 5, 25, 25)])]})
    frames = [Frame(f"s3://{s3_bucket}/in/b c/{i}.jpg", [("person", 0.9, i, 1, i + 10, 11)]) for i in range(300)]
    commit_run(
        out,
        run_id(2),
        {"00000": frames[:150], "00001": frames[150:], "00002": [Frame(f"{DATA}/x.jpg")]},
        uncommitted=frozenset({"00002"}),
    )
    local = ExportConfig(output=f"s3://{s3_bucket}/out", format="coco", to="/unused")
    with open_output(local) as reader:
        records = list(reader)
    assert [r.name for r in records] == ["a.jpg"] + sorted(f"b c/{i}.jpg" for i in range(300))
    client = s3_client(s3_endpoint)
    for fmt in ("coco", "yolo"):
        code = export_main([f"s3://{s3_bucket}/out", "--format", fmt, "--to", f"s3://{s3_bucket}/{fmt}"], PROG)
        assert code == 0, capsys.readouterr().err
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="yolo/", MaxKeys=1000)["Contents"]}
    assert len([k for k in keys if k.startswith("yolo/labels/train/")]) == 301, "a label file per frame, in batches"
    assert {"yolo/data.yaml", "yolo/scores.jsonl"} <= keys
    assert "path" not in yaml.safe_load(_get(client, s3_bucket, "yolo/data.yaml")), (
        "Ultralytics takes the yaml's folder"
    )
    dataset = tmp_path / "instances.json"
    dataset.write_text(_get(client, s3_bucket, "coco/annotations/instances_default.json"))
    coco = COCO(str(dataset))
    assert (len(coco.getImgIds()), len(coco.getAnnIds())) == (301, 301)


def _get(client, bucket: str, key: str) -> str:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_progress_and_summary_go_to_the_stream(synthetic_output, tmp_path):
    from exports.run import run_export

    stream = io.StringIO()
    summary = run_export(
        ExportConfig(output=synthetic_output.path, format="coco", to=str(tmp_path / "x")), stream=stream
    )
    assert stream.getvalue().startswith("exporting 7 frames of file://")
    assert (summary.frames, summary.boxes, summary.errors) == (7, 4, 1)
