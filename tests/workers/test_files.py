"""workers/files.py: a file is published whole or not at all."""

from __future__ import annotations

import os

import pytest

from workers import files
from workers.files import write_atomic


def test_write_replaces_the_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "deep" / "folder" / "model.bin"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_partial(tmp_path, monkeypatch):
    target = tmp_path / "model.bin"
    write_atomic(target, b"old")

    def broken_replace(source: str, destination: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.bin"]
