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
        pytest.param(("ruff", "check", "."), id="ruff-lint"),
        pytest.param(("ruff", "format", "--check", "."), id="ruff-format"),
        # Half a minute of CPU with no cache (CI's case), more beside the whole-job tests.
        pytest.param(("mypy",), id="mypy", marks=[pytest.mark.slow, pytest.mark.timeout(300)]),
    ],
)
def test_tool_is_clean(command: tuple[str, ...]) -> None:
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True)
    code, output = done.returncode, done.stdout + done.stderr
    assert code == 0, f"{' '.join(command)} found problems:\n{output}"


PACKAGES: dict[str, set[str]] = {
    "schemas": set(),
    "workers": {"schemas"},
    "common": {"schemas", "workers"},
    "tables": {"common", "schemas"},
    "jobs": {"common", "schemas", "workers", "tables"},
    "exports": {"common", "schemas", "workers"},
    "yolonas_batch": {"common", "jobs", "exports", "tables"},
}
"""Each package and the project's packages it may import: the layering of docs/architecture.md. ``jobs/`` (the
detection job) and ``exports/`` (reading its output back) never import each other; the command that offers both
sits above them. ``tables/`` (Iceberg) reads committed files through ``common`` only, so that the job may publish
to it without importing ``exports/``."""


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


JOBS_ORDER = (
    "failures",
    "stopping",
    "records",
    "planning",
    "commit",
    "pipeline",
    "tracking",
    "console",
    "runner",
    "cli",
    "detect",
)
"""``jobs/``'s sub-packages and top-level modules in the order a run's data flows, from the bottom up: each imports
only what comes before it (the layer table of docs/architecture.md). ``jobs/__init__.py`` lies below them all."""


def _jobs_rank(module: str) -> int:
    """Where ``module`` (``jobs.<part>…``) lies in ``JOBS_ORDER``; -1 for the ``jobs`` package itself."""
    parts = module.split(".")
    return JOBS_ORDER.index(parts[1]) if len(parts) > 1 else -1


def _back_imports(graph: dict[str, set[str]]) -> list[str]:
    """The imports inside ``jobs/`` that go up ``JOBS_ORDER``, or into a part the order does not name."""
    jobs = {m for m in graph if m.split(".")[0] == "jobs"}
    unnamed = [f"{m} is not in JOBS_ORDER" for m in jobs if len(m.split(".")) > 1 and m.split(".")[1] not in JOBS_ORDER]
    if unnamed:
        return unnamed
    return sorted(
        f"{module} imports {target}"
        for module in jobs
        for target in graph[module]
        if target in jobs and _jobs_rank(target) > _jobs_rank(module)
    )


def test_jobs_imports_go_one_way_in_data_flow_order() -> None:
    assert _back_imports(_imports()) == []


def test_a_planted_back_import_in_jobs_is_found() -> None:
    """The check above can fail: one import from records up into commit is reported."""
    graph = {name: set(targets) for name, targets in _imports().items()}
    graph["jobs.records.run_store"].add("jobs.commit.committer")
    assert _back_imports(graph) == ["jobs.records.run_store imports jobs.commit.committer"]


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
