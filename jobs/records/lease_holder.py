"""Whether a lease's holder could still write: what lets a run take over at once the output of a run killed on its
own host, instead of waiting out that run's lease (``jobs.records.lease``).

A lease record names the host and the process that hold it, and whether that process ran a local Ray of its own.
Such a Ray ends with the process that started it (Ray ties its local services' lives to their driver's, and its
workers' to those services), so once that process is gone nothing of the run writes again and only its record is
left. A cluster's Ray runs on: its tasks may go on publishing for a while after their driver died, so there only
the lease's expiry proves them done.

A process is known by its pid and its start time, since pids are reused. A pid names a process only within one
boot of one host and one pid namespace; containers that share the host's name (Kubernetes' ``hostNetwork`` pods)
each have their own, so the record names those too (``pid_scope``).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable

import psutil

from jobs.records.lease_record import LeaseRecord

START_TOLERANCE_S = 1.0
"""How far two readings of one process's start time may differ: the kernel counts it in ticks since boot, and each
reader adds the boot's time as it reads it. A pid taken again within a second of its first start is no concern: a
holder lives at least as long as it takes to start and write its lease."""

ProcessAlive = Callable[[int, "float | None"], bool]
"""Whether the process of a pid and start time still runs (``process_alive``; a test passes its own)."""


def this_process() -> dict[str, Any]:
    """The fields of a lease record that name this process: host, pid, start time and pid scope."""
    try:
        started: float | None = psutil.Process().create_time()
    except psutil.Error:
        started = None
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": started, "pid_scope": pid_scope()}


def pid_scope() -> str:
    """This boot of the host and this process's pid namespace, in one string; empty where the system tells neither
    (not Linux), leaving the host's name to say where a pid means something."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return f"{boot.read().strip()} {os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def process_alive(pid: int, started: float | None) -> bool:
    """Whether the process with ``pid`` that started at ``started`` still runs: not once the pid is free, a zombie,
    or another process's. With no start time known, any live process under ``pid`` counts as it."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(process.create_time() - started) <= START_TOLERANCE_S
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process under that pid: alive, for all this host can tell
        return True


def holder_gone(holder: LeaseRecord, alive: ProcessAlive) -> bool:
    """Whether ``holder`` can write no more though its lease lasts: it ran its own Ray, on this host and in this pid
    namespace, and its process is gone."""
    return (
        holder.local_ray
        and (holder.host, holder.pid_scope) == (socket.gethostname(), pid_scope())
        and not alive(holder.pid, holder.pid_started)
    )


def took_over(holder: LeaseRecord) -> str:
    """One line for the console of a run that took the output over from ``holder`` (``holder_gone``)."""
    return f"took over the output from run {holder.run_id}: its process {holder.pid} on this host is gone"
