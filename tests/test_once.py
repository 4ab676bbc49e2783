"""What the pytest-xdist workers of one test run share (``tests/support/once.py``), with two workers played by
this process in turn."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from tests.support.once import one_worker, shared


def _worker(monkeypatch: pytest.MonkeyPatch, run: Path, name: str) -> pytest.TempPathFactory:
    """The temporary-path factory of worker ``name`` of a run whose shared folder is ``run``."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER", name)
    return cast(pytest.TempPathFactory, SimpleNamespace(getbasetemp=lambda: run / f"popen-{name}"))


def test_a_value_is_computed_by_the_first_worker_and_read_by_the_next(tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []

    def compute(worker: str) -> dict[str, list[int]]:
        calls.append(worker)
        return {"boxes": [1, 2, 3]}

    first = shared(_worker(monkeypatch, tmp_path, "gw0"), "reference", lambda: compute("gw0"))
    second = shared(_worker(monkeypatch, tmp_path, "gw1"), "reference", lambda: compute("gw1"))
    assert first == second == {"boxes": [1, 2, 3]} and calls == ["gw0"]


def test_a_resource_claimed_by_one_worker_fails_the_other(tmp_path: Path, monkeypatch) -> None:
    one_worker(_worker(monkeypatch, tmp_path, "gw0"), "the session's Ray")
    one_worker(_worker(monkeypatch, tmp_path, "gw0"), "the session's Ray")  # its own again: fine
    with pytest.raises(pytest.fail.Exception, match="used by workers gw0 and gw1: its tests are not grouped"):
        one_worker(_worker(monkeypatch, tmp_path, "gw1"), "the session's Ray")
