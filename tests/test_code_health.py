"""The code stays clean by the project's own rules: ruff's lint and import order, ruff's format, mypy's types.

Run as tests so the README's one test command (and CI) checks them; each prints the tool's own report when it
fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
    ],
    ids=["ruff-lint", "ruff-format", "mypy"],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} found problems:\n{result.stdout}{result.stderr}"
