"""Whether a run starts a local Ray of its own, which its lease records: only where no address, no
``RAY_ADDRESS`` and no Ray joined already name another."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from jobs.pipeline.ray_address import owns_local_ray


def test_a_run_owns_its_ray_only_where_nothing_names_another(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: False))
    assert owns_local_ray(None)
    assert not owns_local_ray("10.0.0.1:6379")  # --ray-address
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # as ray job submit sets it
    assert not owns_local_ray(None)
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setitem(sys.modules, "ray", SimpleNamespace(is_initialized=lambda: True))
    assert not owns_local_ray(None)  # this process joined a Ray before the run: the run uses that one
    monkeypatch.delitem(sys.modules, "ray")
    assert owns_local_ray(None)  # Ray not even imported yet, as in the command line's process
