"""Whether a lease's holder could still write, as the real process table tells: a live process by its pid and start
time, a pid whose process ended (reaped or not), a pid taken by a later process, the Ray workers it marked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from jobs.records.lease_holder import HOLDER_ENV, START_TOLERANCE_S, pid_scope, process_alive, ray_workers, this_process


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
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
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


def test_a_holders_ray_workers_are_found_by_the_mark_they_inherited(tmp_path):
    """A process started as Ray starts its workers (``default_worker.py``, here a stand-in that only waits), with
    the environment of a holder that marked it: found under that holder's nonce only, and no longer once ended.
    The real workers of a killed run's Ray: ``tests/jobs/test_faults.py``."""
    script = tmp_path / "default_worker.py"
    script.write_text("import time\ntime.sleep(60)\n")
    nonce = "0123456789abcdef"
    worker = subprocess.Popen([sys.executable, str(script)], env={**os.environ, HOLDER_ENV: nonce})
    try:
        assert ray_workers(nonce) == [worker.pid]
        assert ray_workers("fedcba9876543210") == []
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert ray_workers(nonce) == []
