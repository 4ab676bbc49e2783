"""Fixtures of the whole-job tests: one two-node Ray cluster started by the ``ray`` CLI, shared by the tests that
run the job as users run it against a cluster."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.two_node import TwoNodeCluster, two_node_cluster

HEAD_CPUS = 4
"""Enough for a whole job once the second node is gone: two model actors and two decode tasks (the driver and
the write and publish tasks reserve no CPU)."""
SECOND_CPUS = 2


@pytest.fixture(scope="session")
def two_node() -> Iterator[TwoNodeCluster]:
    """A head (with the dashboard's job server) and a second node on this machine, token authentication on, as a
    cluster is; every process of both killed at the end. A test that loses the second node leaves the head
    alone for the tests after it. Its sessions live in a folder directly under the system's temporary folder:
    pytest's own (``…/pytest-N/popen-gw1/…`` under pytest-xdist) leaves too few of a Unix socket path's 107 bytes
    for Ray's session and socket names."""
    temp_dir = Path(tempfile.mkdtemp(prefix="ray-"))
    try:
        with two_node_cluster(temp_dir, HEAD_CPUS, SECOND_CPUS) as started:
            yield started
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
