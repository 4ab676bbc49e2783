"""What the pytest-xdist workers of one test run compute once between them: the first to ask computes it, the
others wait for it and read it back."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Callable, TypeVar

import pytest
from filelock import FileLock

T = TypeVar("T")


def shared(tmp_path_factory: pytest.TempPathFactory, name: str, compute: Callable[[], T]) -> T:
    """``compute()``, once per test run: in the folder the run's workers share (pytest-xdist's recipe for
    session fixtures), kept as ``name``. Without workers (``-n 0``), computed here."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return compute()
    kept = _in_run(tmp_path_factory, f"{name}.pickle")
    with _locked(kept):
        if kept.exists():
            return pickle.loads(kept.read_bytes())
        value = compute()
        kept.write_bytes(pickle.dumps(value))
        return value


def made_once(path: Path, make: Callable[[Path], None]) -> Path:
    """``path``, made by ``make(partial)`` unless it exists: one process makes it while the others wait (the probe
    weights, cached between runs and made by whichever worker asks first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        if not path.exists():
            partial = path.with_suffix(".partial")
            make(partial)
            partial.replace(path)
    return path


def one_worker(tmp_path_factory: pytest.TempPathFactory, name: str) -> None:
    """Fail unless ``name`` is used by this pytest-xdist worker alone in this test run: what the tests' grouping
    onto one worker promises (``XDIST_GROUPS`` in ``tests/conftest.py``), and what a pytest or pytest-xdist
    release that loses the grouping silently would break."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    claim = _in_run(tmp_path_factory, f"{name}.worker")
    with _locked(claim):
        if claim.exists() and claim.read_text() != worker:
            pytest.fail(f"{name} is used by workers {claim.read_text()} and {worker}: its tests are not grouped")
        claim.write_text(worker)


def _in_run(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``name`` in the folder every worker of this test run shares: the parent of each worker's own."""
    return tmp_path_factory.getbasetemp().parent / name


def _locked(path: Path) -> FileLock:
    return FileLock(f"{path}.lock")
