"""The local Ray the job starts: its workers run in the driver's own environment."""

from __future__ import annotations

import os
import sys


def test_workers_run_in_the_drivers_interpreter(ray_cluster):
    """Under ``uv run`` (how the README runs the job and CI runs this suite) Ray's uv integration would start
    each worker through ``uv run`` in a copy of the working directory, with a virtual environment of its own
    built for the session: a different interpreter, and seconds more start-up per run."""

    @ray_cluster.remote
    def interpreter() -> str:
        return sys.executable

    assert ray_cluster.get(interpreter.remote()) == sys.executable
    assert "py_executable" not in ray_cluster.get_runtime_context().runtime_env


def test_a_local_ray_keeps_idle_workers_for_the_zero_cpu_tasks(ray_cluster):
    """The session's Ray is started as the job starts its own (``start_ray``): it keeps idle workers beyond one per
    CPU, so shards committing together reuse workers rather than each starting one."""
    from jobs.pipeline.ray_session import IDLE_WORKERS_BEYOND_CPUS

    assert os.environ["RAY_num_workers_soft_limit"] == str((os.cpu_count() or 1) + IDLE_WORKERS_BEYOND_CPUS)
