"""The code stays clean by the project's own rules: ruff's lint and import order, ruff's format, mypy's types.

Run as tests so the README's one test command (and CI) checks them; each prints the tool's own report when it
fails."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["ruff", "check", "."], id="ruff-lint"),
        pytest.param(["ruff", "format", "--check", "."], id="ruff-format"),
        pytest.param(["mypy"], id="mypy", marks=pytest.mark.slow),  # half a minute: a full check, no cache in CI
    ],
)
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} found problems:\n{result.stdout}{result.stderr}"


PACKAGES: dict[str, set[str]] = {
    "schemas": set(),
    "workers": {"schemas"},
    "common": {"schemas", "workers"},
    "jobs": {"common", "schemas", "workers"},
    "exports": {"common", "schemas", "workers"},
    "yolonas_batch": {"common", "jobs", "exports"},
}
"""Each package and the project's packages it may import: the layering of docs/architecture.md. ``jobs/`` (the
detection job) and ``exports/`` (reading its output back) never import each other; the command that offers both
sits above them."""


def _imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports, at its top or inside a function."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_packages_import_only_the_layers_below_them() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in _imports().items()
        for target in targets
        if target.split(".")[0] != module.split(".")[0] and target.split(".")[0] not in PACKAGES[module.split(".")[0]]
    ]
    assert wrong == []


def test_no_import_circle_between_modules() -> None:
    graph = _imports()
    circles = []
    for start in graph:
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    circles.append(" -> ".join((*path, target)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert circles == []
