"""Whether a lease's holder could still write: what lets a run take over at once the output of a run killed on its
own host, instead of waiting out that run's lease (``jobs.records.lease``).

A lease record names the host and the process that hold it, and whether that process ran a local Ray of its own.
Such a Ray ends with the process that started it: its services share their driver's fate, and its workers end a
moment after them. So once that process and the last of its Ray's workers are gone, nothing of the run writes
again and only its record is left. A cluster's Ray runs on: its tasks may go on publishing for a while after their
driver died, so there only the lease's expiry proves them done.

A process is known by its pid and its start time, since pids are reused. A pid names a process only within one
boot of one host and one pid namespace; containers that share the host's name (Kubernetes' ``hostNetwork`` pods)
each have their own, so the record names those too (``pid_scope``). A holder's Ray workers are known by a mark in
their environment, inherited from the holder's process, which sets it before it starts its Ray (``mark_local_ray``).
"""

from __future__ import annotations

import os
import socket
from typing import Any, Protocol

import psutil

from jobs.records.clock import Clock
from jobs.records.lease_record import LeaseRecord

START_TOLERANCE_S = 1.0
"""How far two readings of one process's start time may differ: the kernel counts it in ticks since boot, and each
reader adds the boot's time as it reads it. A pid taken again within a second of its first start is no concern: a
holder lives at least as long as it takes to start and write its lease."""

WORKERS_GRACE_S = 2.0
"""How long a run lets the Ray workers of a holder whose process is gone end on their own (a second or two after
their driver on an idle host) before it ends them itself, as ``ray stop`` would: on a busy host they linger longer."""
WORKERS_EXIT_WAIT_S = 15.0
"""How long a run waits in all for those workers to be gone, before it leaves the output to the holder's lease."""
WORKERS_POLL_S = 0.2
HOLDER_ENV = "YOLONAS_BATCH_LEASE_HOLDER"
"""The variable that marks the processes a holder's local Ray runs: its lease's nonce."""


class HolderProcesses(Protocol):
    """What this host's process table says of a lease's holder (``HOST``; a test passes its own)."""

    def alive(self, pid: int, started: float | None) -> bool:
        """Whether the process of ``pid`` that started at ``started`` still runs (``process_alive``)."""
        ...

    def workers(self, nonce: str) -> list[int]:
        """The live processes of the local Ray a holder of ``nonce`` started that may run its tasks
        (``ray_workers``)."""
        ...

    def end(self, nonce: str) -> None:
        """Kill those processes (``end_ray_workers``)."""
        ...


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


def mark_local_ray(nonce: str) -> None:
    """Mark what this process starts from now on, its local Ray among them, as the lease holder ``nonce``'s."""
    os.environ[HOLDER_ENV] = nonce


def ray_workers(nonce: str) -> list[int]:
    """The live processes on this host of the holder ``nonce``'s Ray (``mark_local_ray``) that run or hand out its
    tasks: its workers, once titled ``ray::<task or actor>``, and its raylet. (A worker still starting when its
    raylet died never gets a task; Ray's other processes run none of the job's code.)"""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            runs_tasks = " ".join(cmdline).startswith("ray::") or any(part.endswith("/raylet") for part in cmdline)
            if runs_tasks and process.environ().get(HOLDER_ENV) == nonce:
                if process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process.pid)
        except psutil.Error:  # ended meanwhile, or another user's: not one of this user's holder
            continue
    return found


def end_ray_workers(nonce: str) -> None:
    """Kill the processes ``ray_workers`` finds for ``nonce``: what is left of a gone holder's own local Ray, found
    afresh by its mark (never by a pid that may have been taken since)."""
    for pid in ray_workers(nonce):
        try:
            process = psutil.Process(pid)
            if process.environ().get(HOLDER_ENV) == nonce:
                process.kill()
        except psutil.Error:  # ended meanwhile, or not this user's to end: waited for like the rest
            continue


class _Host:
    alive = staticmethod(process_alive)
    workers = staticmethod(ray_workers)
    end = staticmethod(end_ray_workers)


HOST: HolderProcesses = _Host()
"""This host's process table."""


def holder_gone(holder: LeaseRecord, processes: HolderProcesses, clock: Clock) -> bool:
    """Whether ``holder`` can write no more though its lease lasts: it ran its own Ray, on this host and in this pid
    namespace, its process is gone, and so are its Ray's workers: they end on their own within ``WORKERS_GRACE_S``,
    or are ended then, and are gone within ``WORKERS_EXIT_WAIT_S``."""
    if not holder.local_ray or (holder.host, holder.pid_scope) != (socket.gethostname(), pid_scope()):
        return False
    if processes.alive(holder.pid, holder.pid_started):
        return False
    started, ended = clock.monotonic(), False
    while processes.workers(holder.nonce):
        waited = clock.monotonic() - started
        if waited >= WORKERS_EXIT_WAIT_S:
            return False
        if waited >= WORKERS_GRACE_S and not ended:
            processes.end(holder.nonce)
            ended = True
        clock.sleep(WORKERS_POLL_S)
    return True


def took_over(holder: LeaseRecord) -> str:
    """One line for the console of a run that took the output over from ``holder`` (``holder_gone``)."""
    return f"took over the output from run {holder.run_id}: its process {holder.pid} on this host is gone"
