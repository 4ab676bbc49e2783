"""Connect to Ray (a running cluster, or a local one started for this run) with the job's quiet settings."""

from __future__ import annotations

import logging
import os

import ray
from ray.data import DataContext

from jobs.pipeline.ray_address import owns_local_ray
from jobs.stopping import through_ray_init
from workers.quiet import silenced_output

IDLE_WORKERS_BEYOND_CPUS = 4
"""Idle Python workers a local Ray keeps beyond one per CPU, for the zero-CPU write and publish tasks. Ray ends
idle workers beyond one per CPU after a second (its ``num_workers_soft_limit``), so on a small machine each set of
shards committing together started new workers: a Python start and imports each, which delayed the last commits
and took CPU from the model (``docs/performance.md``, "Start-up")."""


def start_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join ``address``, else the cluster ``RAY_ADDRESS`` names, else start a local Ray for this process (with
    ``num_cpus`` logical CPUs, default: the machine's). The run's stop handlers are put back once Ray has taken
    SIGTERM over (``jobs.stopping.through_ray_init``)."""
    if ray.is_initialized():
        return
    # Ray core logs a C++ error line about ray-project/ray#53727 for every actor pool with large constructor
    # arguments; it is noise for this job (the driver owns those objects for the whole run).
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict = {"logging_level": logging.ERROR, "log_to_driver": False}
    with through_ray_init(), silenced_output():
        if owns_local_ray(address):
            idle = (num_cpus or os.cpu_count() or 1) + IDLE_WORKERS_BEYOND_CPUS
            os.environ.setdefault("RAY_num_workers_soft_limit", str(idle))  # read by the raylet ray.init starts
            ray.init(include_dashboard=False, num_cpus=num_cpus, **kwargs)
        else:
            ray.init(address=address, **kwargs)  # None: the cluster RAY_ADDRESS names
    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False


def cluster_gpus() -> int:
    """GPUs the cluster has now (0 on a CPU-only cluster)."""
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    return int(ray.cluster_resources().get("CPU", 1))
