"""What the benchmark smoke tests share: two photos to run on, and the script run as a person runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_photos(coco_images: list[Path], tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for photo in coco_images[:2]:
        shutil.copy(photo, folder / photo.name)
    return folder


@pytest.fixture
def run_benchmark() -> Callable[..., subprocess.CompletedProcess]:
    """``benchmarks/NAME.py ARGS`` in a fresh interpreter from the repository root; fails the test on a non-zero
    exit."""

    def run(name: str, *args: str) -> subprocess.CompletedProcess:
        finished = subprocess.run(
            [sys.executable, f"benchmarks/{name}.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300
        )
        assert finished.returncode == 0, finished.stderr[-2000:]
        return finished

    return run
