"""Whether a lease's holder could still write, as the real process table tells: a live process by its pid and start
time, a pid whose process ended (reaped or not), a pid taken by a later process; the Ray it marked, until it ends."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import psutil

from jobs.records.lease_holder import (
    HOLDER_ENV,
    START_TOLERANCE_S,
    WORKERS_EXIT_WAIT_S,
    end_ray_workers,
    pid_scope,
    process_alive,
    ray_workers,
    this_process,
)
from tests.conftest import REPO


def test_this_process_is_named_by_host_pid_start_and_pid_namespace():
    me = this_process()
    assert me == {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": psutil.Process().create_time(),
        "pid_scope": pid_scope(),
    }
    assert pid_scope().endswith(os.readlink("/proc/self/ns/pid"))  # and this boot's id before it


def test_a_live_process_is_alive_only_under_its_own_start_time():
    me = this_process()
    assert process_alive(me["pid"], me["pid_started"])
    assert process_alive(me["pid"], None)  # no start time recorded: whatever runs under the pid counts
    assert not process_alive(me["pid"], me["pid_started"] - 10 * START_TOLERANCE_S)  # the pid taken again


def test_an_ended_process_is_gone_reaped_or_not():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # killed below, never waited out
    started = psutil.Process(child.pid).create_time()
    assert process_alive(child.pid, started)
    os.kill(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:  # ended, not yet reaped by its parent
        assert time.monotonic() < deadline, "the killed child never ended"
        time.sleep(0.01)
    assert not process_alive(child.pid, started)
    child.wait(timeout=30)
    assert not process_alive(child.pid, started)


_MARKED_RAY = """
import os, sys, time
os.environ[sys.argv[1]] = sys.argv[2]  # what the lease's holder does before it starts Ray
import ray
ray.init(include_dashboard=False, num_cpus=1, log_to_driver=False)

@ray.remote
class Publisher:
    def pid(self):
        return os.getpid()

print(ray.get(Publisher.remote().pid.remote()), flush=True)
time.sleep(300)  # until the test kills its process group
"""


def test_a_killed_holders_ray_is_found_by_its_mark_and_ended():
    """A real local Ray, started by a process marked as a holder's: its raylet and the worker that runs an actor
    are found under that holder's nonce only; once its driver's process group is killed, what is left of them is
    ended by their mark and gone well within the time a taking run waits for them."""
    nonce = secrets.token_hex(8)  # this test's own: other tests on the machine mark their Rays too
    driver = subprocess.Popen(
        [sys.executable, "-c", _MARKED_RAY, HOLDER_ENV, nonce],
        cwd=REPO,
        env={name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"},  # a Ray of its own
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert driver.stdout is not None
        actor = int(driver.stdout.readline())
        found = ray_workers(nonce)
        assert actor in found and any(psutil.Process(pid).name() == "raylet" for pid in found), found
        assert ray_workers("fedcba9876543210") == []
        end_ray_workers("fedcba9876543210")  # another holder's mark: ends none of these
        assert sorted(ray_workers(nonce)) == sorted(found)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    killed = time.monotonic()
    end_ray_workers(nonce)
    while ray_workers(nonce) and time.monotonic() - killed < 2 * WORKERS_EXIT_WAIT_S:
        time.sleep(0.1)
    assert ray_workers(nonce) == [] and time.monotonic() - killed < WORKERS_EXIT_WAIT_S
