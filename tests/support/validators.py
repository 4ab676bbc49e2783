"""Run the format validators (``tests/tools/validators``) in their own locked environment, and read their JSON.

Label Studio's SDK and datumaro pin opencv, pyarrow, pandas and pillow versions that clash with the project's, so
they live in a uv project of their own, run with ``uv run --project tests/tools/validators --frozen``: the first
run installs it from its ``uv.lock`` (a few seconds with PyPI at hand), later runs reuse it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VALIDATORS = REPO / "tests" / "tools" / "validators"
TIMEOUT_S = 600
"""Long enough for the first run's install of the environment on a slow link."""
_PROJECT_ENV_VARIABLES = ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
"""What would point uv at the project's own environment (``uv run`` sets the first; a CI may set the second, and
then the validators' install would replace the project's packages)."""


def uv() -> list[str]:
    """The uv that runs the tests (``uv run`` names itself in ``UV``), else one on the PATH, else pip's module."""
    if os.environ.get("UV") and Path(os.environ["UV"]).is_file():
        return [os.environ["UV"]]
    found = shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def run_validator(script: str, *args: str | os.PathLike[str]) -> Any:
    """``tests/tools/validators/<script> args…`` in the validators' environment; its JSON, or the test fails with
    what the script printed."""
    command = [*uv(), "run", "--project", str(VALIDATORS), "--frozen", "--quiet", "python", str(VALIDATORS / script)]
    env = {key: value for key, value in os.environ.items() if key not in _PROJECT_ENV_VARIABLES}
    result = subprocess.run(
        [*command, *map(str, args)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"{script} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{script} printed no JSON:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
