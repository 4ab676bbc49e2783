"""Usage errors of ``detect``: one line on stderr naming the problem, exit code 2, no traceback, nothing written.

Each is checked in-process through the command line's own entry point (what ``yolonas-batch detect`` and
``python -m jobs.detect`` call); one test runs the installed console script, as a user does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import detect_main, detect_parser
from yolonas_batch.cli import main

PROG = "yolonas-batch detect"


def _assert_usage_error(code: int, capsys: pytest.CaptureFixture, expected: str) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: error: "), err
    assert expected in lines[0]


def _run(*args: str) -> int:
    try:
        return detect_main(list(args), prog=PROG)
    except SystemExit as exc:  # argparse's own refusals exit, as they do for the console script
        assert isinstance(exc.code, int)
        return exc.code


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--conf", "1.5"], "--conf"),
        (["--storage-options", "{not json"], "--storage-options"),
        (["--video-stride", "2", "--video-fps", "3"], "not allowed with"),
        (["--decode-workers", "0"], "--decode-workers"),
        (["--write-workers", "0"], "--write-workers"),
        (["--actors-per-gpu", "0"], "--actors-per-gpu"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else None,
)
def test_bad_flags_and_values_are_one_line(capsys, args, expected):
    _assert_usage_error(_run("x.jpg", "--output", "o", *args), capsys, expected)


def test_missing_output(capsys):
    _assert_usage_error(_run("x.jpg"), capsys, "--output")


def test_missing_source(tmp_path: Path, probe_weights: Path, capsys):
    code = _run(str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"), "--weights", str(probe_weights))
    _assert_usage_error(code, capsys, "source not found")


def test_unreadable_weights(tmp_path: Path, coco_images, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    code = _run(str(coco_images[0]), "--output", str(tmp_path / "out"), "--weights", str(bad))
    _assert_usage_error(code, capsys, f"cannot load weights from {bad}")
    code = _run(str(coco_images[0]), "--output", str(tmp_path / "out"), "--weights", str(tmp_path / "none.pth"))
    _assert_usage_error(code, capsys, "weights file not found")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_as_user(tmp_path: Path, coco_images, probe_weights, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code = _run(str(coco_images[0]), "--output", str(locked / "out"), "--weights", str(probe_weights))
    _assert_usage_error(code, capsys, "cannot write to output")


def test_unwritable_output(tmp_path: Path, coco_images, probe_weights, capsys):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    code = _run(str(coco_images[0]), "--output", str(blocker / "out"), "--weights", str(probe_weights))
    _assert_usage_error(code, capsys, "cannot write to output")


def test_wrong_num_classes(tmp_path: Path, coco_images, probe_weights, capsys):
    code = _run(
        str(coco_images[0]), "--output", str(tmp_path / "o"), "--weights", str(probe_weights), "--num-classes", "3"
    )
    _assert_usage_error(code, capsys, "--num-classes 3 does not match the weights, which have 80 classes")


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert (
        capsys.readouterr().err == "yolonas-batch: error: unknown command 'frobnicate' "
        "(expected detect, demo, track, export, report or iceberg)\n"
    )


@pytest.mark.slow
def test_the_console_script_tells_a_usage_error_in_one_line(tmp_path: Path):
    """The installed ``yolonas-batch`` command, in a process of its own: exit code 2 and one line, no traceback."""
    script = Path(sys.executable).parent / "yolonas-batch"
    result = subprocess.run(
        [str(script), "detect", "x.jpg", "--output", str(tmp_path / "o"), "--frobnicate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"{PROG}: error: unrecognized arguments: --frobnicate"), result.stderr
    assert not (tmp_path / "o").exists()


def test_resume_is_the_default_and_overwrite_must_be_asked_for_this_model_or_all():
    parser = detect_parser("detect")
    assert parser.parse_args(["src", "--output", "out"]).overwrite is None
    assert parser.parse_args(["src", "--output", "out", "--resume"]).overwrite is None
    assert parser.parse_args(["src", "--output", "out", "--overwrite"]).overwrite == "model"
    assert parser.parse_args(["--overwrite", "all", "src", "--output", "out"]).overwrite == "all"


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--iceberg", "sqlite:////no/such/folder/c.db"], "--iceberg: cannot open sqlite:////no/such/folder/c.db"),
        (["--iceberg", "sqlite://", "--iceberg-namespace", "a.b"], "--iceberg-namespace 'a.b': expected letters"),
        (["--iceberg-namespace", "cams"], "--iceberg-namespace needs --iceberg"),
    ],
    ids=("unopenable-catalog", "namespace", "namespace-alone"),
)
def test_what_cannot_publish_to_iceberg_is_refused_before_the_run(tmp_path: Path, capsys, args, expected):
    """Before the lease, the model or Ray: nothing of a run is recorded (only the write probe's folder is left)."""
    out = tmp_path / "out"
    _assert_usage_error(_run(str(tmp_path / "x.jpg"), "--output", str(out), *args), capsys, expected)
    assert not [path for path in out.rglob("*") if path.is_file()]
