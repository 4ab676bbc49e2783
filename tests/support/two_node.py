"""A private two-node Ray cluster on this machine, each node started by the ``ray`` CLI as on separate hosts.

Each node is one ``ray start --block`` process made the leader of a new session. Every process Ray starts for
that node (GCS, raylet, agents, workers, actors) stays in that session even when its parent dies and it is
re-parented, and Ray's workers sit in process groups of their own, so the session id is what tells one node's
processes from the other's and from any other Ray on the machine: it is how a test finds where an actor runs,
kills one node whole (its raylet, workers and agents at once, as when a host is lost), and tears the cluster
down without touching anyone else's Ray (never ``ray stop``, which stops every Ray on the machine).

Both nodes are started on 127.0.0.1; Ray records a loopback address as the machine's own address (its logs show
that one), and the GCS answers on both. Every port is chosen free rather than left at Ray's defaults (GCS 6379,
client server 10001, dashboard 8265, agent 52365, ...), so the cluster coexists with the session's own local Ray
and with other Rays on the machine. Token authentication is on, as Ray enables it by default: one token, made for
the cluster and passed in the environment (``RAY_AUTH_TOKEN``) to both nodes and to every client, since a node
joining with ``ray start --address`` does not pick up the token a head writes to ``~/.ray/auth_token``. The head
serves the dashboard and its job server, for ``ray job submit``.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT_S = 240
"""Generous: on a busy two-core machine a head takes tens of seconds to come up."""
REGISTRATION_POLL_S = 0.25
"""How often start-up asks whether both nodes are registered: each ``ray status`` is itself a process start."""
OBJECT_STORE_BYTES = 256 * 1024 * 1024
"""Per node, in ``/dev/shm``: a few decoded batches and the model are all a test run needs."""
KILL_TIMEOUT_S = 30
NODE_DEATH_CHECKS = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
"""The GCS declares a node dead after 3 failed health checks a second apart, not 5 checks 3 s apart (Ray's
defaults, read from the environment the head starts in): a lost node's actors are restarted elsewhere seconds
sooner, which is what a node-loss test waits for, not what it checks."""


@dataclass(frozen=True)
class Node:
    """One ``ray start --block`` and the session it leads."""

    name: str
    cli: subprocess.Popen[bytes]
    log: Path
    cpus: int

    def processes(self) -> list[psutil.Process]:
        """The node's live processes, the ``ray start`` itself included (zombies are already dead)."""
        found = []
        for process in psutil.process_iter():
            try:
                if os.getsid(process.pid) == self.cli.pid and process.status() != psutil.STATUS_ZOMBIE:
                    found.append(process)
            except (OSError, psutil.Error):  # gone meanwhile
                continue
        return found

    def kill(self) -> None:
        """SIGKILL every process of the node at once, as when its host is lost, until none is left (a raylet may
        be starting a worker while it is being killed)."""
        deadline = time.monotonic() + KILL_TIMEOUT_S
        while processes := self.processes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} node: processes survived SIGKILL: {[p.pid for p in processes]}")
            for process in processes:
                try:
                    process.send_signal(signal.SIGKILL)
                except psutil.Error:
                    continue
            psutil.wait_procs(processes, timeout=5)
        self.cli.wait(timeout=KILL_TIMEOUT_S)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass(frozen=True)
class TwoNodeCluster:
    address: str
    """The head's GCS address, for ``--ray-address``."""
    dashboard: str
    """The head's dashboard (and job server) URL, for ``ray job submit --address``."""
    env: dict[str, str]
    """The environment to run the job with (and that the nodes run with)."""
    head: Node
    second: Node

    @property
    def nodes(self) -> tuple[Node, Node]:
        return self.head, self.second


@contextmanager
def two_node_cluster(temp_dir: Path, head_cpus: int, second_cpus: int) -> Iterator[TwoNodeCluster]:
    """A head with ``head_cpus`` logical CPUs and a second node with ``second_cpus``, both on this machine, up and
    registered; every process of both is killed on exit, however the block ends.

    ``temp_dir`` holds each node's session (logs, sockets): keep it short, a Unix socket path has at most 107
    bytes and Ray puts a 40-character session name and ``sockets/plasma_store`` under it."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        **NODE_DEATH_CHECKS,
    }
    env.pop("RAY_ADDRESS", None)
    gcs, client, dashboard, *head_ports = free_ports(9)
    second_ports = free_ports(6)
    address = f"127.0.0.1:{gcs}"
    with ExitStack() as stack:
        head = _start_node(
            "head",
            ["--head", f"--port={gcs}", "--include-dashboard=true", "--dashboard-host=127.0.0.1"]
            + [f"--dashboard-port={dashboard}", f"--ray-client-server-port={client}", *_node_ports(head_ports)],
            head_cpus,
            temp_dir,
            env,
        )
        stack.callback(head.kill)
        second = _start_node("second", [f"--address={address}", *_node_ports(second_ports)], second_cpus, temp_dir, env)
        stack.callback(second.kill)
        cluster = TwoNodeCluster(
            address=address, dashboard=f"http://127.0.0.1:{dashboard}", env=env, head=head, second=second
        )
        _wait_until_registered(cluster)
        yield cluster


def _start_node(name: str, options: list[str], cpus: int, temp_dir: Path, env: dict[str, str]) -> Node:
    folder = temp_dir / name
    folder.mkdir(parents=True)
    log = temp_dir / f"{name}.log"
    with log.open("wb") as output:
        cli = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}"]
            + ["--num-gpus=0", f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={folder}", *options],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Node(name=name, cli=cli, log=log, cpus=cpus)


def _node_ports(ports: list[int]) -> list[str]:
    """The ports each node's own processes listen on, so that two raylets (and their agents) coexist."""
    names = [
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "runtime-env-agent-port",
        "metrics-export-port",
    ]
    return [f"--{name}={port}" for name, port in zip(names, ports)]


def _wait_until_registered(cluster: TwoNodeCluster) -> None:
    """Until the cluster counts both nodes' CPUs, as ``ray status`` (the GCS's view) reports them (a job started
    earlier would lay itself out on the head alone), and the head's job server answers."""
    total = cluster.head.cpus + cluster.second.cpus
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            if node.cli.poll() is not None:
                raise RuntimeError(f"ray start ({node.name}) exited {node.cli.returncode}:\n{node.log_tail()}")
        status = _ray(cluster, "status", f"--address={cluster.address}")
        if re.search(rf"/{total}\.0 CPU\b", status) and _ray(cluster, "job", "list", f"--address={cluster.dashboard}"):
            return
        time.sleep(REGISTRATION_POLL_S)
    raise RuntimeError(f"the two-node cluster did not come up within {STARTUP_TIMEOUT_S} s:\n{status[-2000:]}")


def _ray(cluster: TwoNodeCluster, *args: str) -> str:
    """What ``ray ARGS`` printed, when it succeeded; empty otherwise."""
    probe = subprocess.run(
        [str(BIN / "ray"), *args], env=cluster.env, capture_output=True, text=True, timeout=STARTUP_TIMEOUT_S
    )
    return probe.stdout + probe.stderr if probe.returncode == 0 else ""


def free_ports(count: int) -> list[int]:
    """Ports free now (the kernel's choice), bound all at once so that none repeats."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
