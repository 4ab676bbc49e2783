"""Usage errors: one line on stderr naming the problem, exit code 2, no traceback, nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jobs.detect", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def _assert_usage_error(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in lines[0]


def test_unknown_flag():
    _assert_usage_error(_run("x.jpg", "--output", "o", "--frobnicate"), "unrecognized arguments: --frobnicate")


def test_missing_output():
    _assert_usage_error(_run("x.jpg"), "--output")


def test_bad_values_are_one_line():
    _assert_usage_error(_run("x.jpg", "--output", "o", "--conf", "1.5"), "--conf")
    _assert_usage_error(_run("x.jpg", "--output", "o", "--storage-options", "{not json"), "--storage-options")
    _assert_usage_error(_run("x.jpg", "--output", "o", "--video-stride", "2", "--video-fps", "3"), "not allowed with")
    _assert_usage_error(_run("x.jpg", "--output", "o", "--decode-workers", "0"), "--decode-workers")
    _assert_usage_error(_run("x.jpg", "--output", "o", "--write-workers", "0"), "--write-workers")
    _assert_usage_error(_run("x.jpg", "--output", "o", "--actors-per-gpu", "0"), "--actors-per-gpu")


def test_missing_source(tmp_path: Path, probe_weights: Path):
    result = _run(str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"), "--weights", str(probe_weights))
    _assert_usage_error(result, "source not found")


def test_unreadable_weights(tmp_path: Path, coco_images):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    result = _run(str(coco_images[0]), "--output", str(tmp_path / "out"), "--weights", str(bad))
    _assert_usage_error(result, f"cannot load weights from {bad}")
    result = _run(str(coco_images[0]), "--output", str(tmp_path / "out"), "--weights", str(tmp_path / "none.pth"))
    _assert_usage_error(result, "weights file not found")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_as_user(tmp_path: Path, coco_images, probe_weights):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = _run(str(coco_images[0]), "--output", str(locked / "out"), "--weights", str(probe_weights))
    _assert_usage_error(result, "cannot write to output")


def test_unwritable_output(tmp_path: Path, coco_images, probe_weights):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    result = _run(str(coco_images[0]), "--output", str(blocker / "out"), "--weights", str(probe_weights))
    _assert_usage_error(result, "cannot write to output")


def test_wrong_num_classes(tmp_path: Path, coco_images, probe_weights):
    result = _run(
        str(coco_images[0]), "--output", str(tmp_path / "o"), "--weights", str(probe_weights), "--num-classes", "3"
    )
    _assert_usage_error(result, "--num-classes 3 does not match the weights, which have 80 classes")


def test_top_level_command():
    result = subprocess.run(
        [sys.executable, "-c", "import sys; from jobs.cli import main; sys.exit(main(['frobnicate']))"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "unknown command 'frobnicate'" in result.stderr


def test_resume_is_the_default_and_overwrite_must_be_asked_for():
    from jobs.cli import detect_parser

    parser = detect_parser("detect")
    assert parser.parse_args(["src", "--output", "out"]).overwrite is False
    assert parser.parse_args(["src", "--output", "out", "--resume"]).overwrite is False
    assert parser.parse_args(["src", "--output", "out", "--overwrite"]).overwrite is True
