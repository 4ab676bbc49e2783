"""The environment uv installs from ``pyproject.toml``: its packages come compiled to bytecode."""

from __future__ import annotations

import importlib.util
import os
import sysconfig
from pathlib import Path

PROCESS_PACKAGES = ("ray", "torch", "onnxruntime", "pyarrow", "numpy", "pandas", "super_gradients")
"""What the job's processes import: every Ray worker, actor and agent imports Ray, Ray Data's actors pandas and
pyarrow, the model actor torch and ONNX Runtime, the driver all of them and super-gradients."""


def test_installed_packages_are_compiled_to_bytecode() -> None:
    """A local run starts a dozen Python processes, each importing Ray. Where Python may not write its bytecode
    cache (``PYTHONDONTWRITEBYTECODE=1``, common in container images; a read-only environment), a package uv
    installed without compiling it is compiled from source again in every process of every run (docs/performance.md
    measures what it costs). ``uv sync --compile-bytecode`` (the README's install step) compiles it once. Lazily written
    caches would cover only the modules imported so far, far short of the whole."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    for package in PROCESS_PACKAGES:
        sources = [
            Path(root, name) for root, _, names in os.walk(purelib / package) for name in names if name.endswith(".py")
        ]
        compiled = sum(Path(importlib.util.cache_from_source(str(source))).is_file() for source in sources)
        # A file or two written for a newer Python (torch's py312_intrinsics.py) cannot compile on 3.11.
        assert sources and compiled >= 0.99 * len(sources), f"{package}: {compiled} of {len(sources)} modules compiled"
