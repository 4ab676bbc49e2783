"""A real PostgreSQL server for tests: PostgreSQL's own ``initdb`` and ``pg_ctl``, one server per session, a fresh
database per test.

PostgreSQL refuses to run as root, and tests (CI) often run as root: the server then runs as ``nobody``, its
files in a folder of its own. It listens on a Unix socket in that folder only (no TCP port to collide with another
session's), and trusts local connections, so the tests connect as its superuser without a password (a password in
a URI is accepted and ignored: what a test uses to show that one is never logged or saved). A missing PostgreSQL
fails the tests that need it, saying what to install, never skips them: ``.ci/run`` installs Debian's package.

Its fixtures reach every test module through ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

USER = "yolonas"
"""The server's superuser, as whom tests connect."""
_UNPRIVILEGED = "nobody"
_SEARCHED = "/usr/lib/postgresql/*/bin"
"""Where Debian's ``postgresql`` package puts the server's programs (not on PATH), one folder per version."""


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its socket's folder, and how to reach a database on it."""

    socket_dir: Path

    def uri(self, database: str, password: str | None = None) -> str:
        """The SQLAlchemy URI of ``database`` (psycopg, the driver ``postgresql://`` means)."""
        secret = f":{password}" if password else ""
        return f"postgresql://{USER}{secret}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        """A new, empty database's name."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        # autocommit: CREATE DATABASE cannot run in a transaction
        with psycopg.connect(dbname="postgres", user=USER, host=str(self.socket_dir), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return name


def binaries() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else the newest of Debian's; fails the test when none."""
    on_path = shutil.which("initdb")
    found = [str(Path(on_path).parent)] if on_path else []
    found += sorted(glob.glob(_SEARCHED), key=lambda folder: int(Path(folder).parent.name), reverse=True)
    for folder in found:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    pytest.fail(
        f"PostgreSQL's initdb and pg_ctl are neither on PATH nor in {_SEARCHED}: install Debian's postgresql "
        "package (apt-get install postgresql; .ci/run does)"
    )


def _as_server_user() -> dict[str, Any]:
    """``subprocess`` arguments that run a program as the server's user: ``nobody`` when the tests run as root."""
    if os.geteuid() != 0:
        return {}
    account = pwd.getpwnam(_UNPRIVILEGED)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _run(command: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **_as_server_user())
    if done.returncode != 0:
        told = log.read_text() if log is not None and log.exists() else ""
        pytest.fail(f"PostgreSQL: {what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}{told}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, stopped and removed at its end."""
    bin_dir = binaries()
    home = Path(tempfile.mkdtemp(prefix="yolonas-postgres-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam(_UNPRIVILEGED)
        os.chown(home, account.pw_uid, account.pw_gid)
    data, log = home / "data", home / "server.log"
    _run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        "initdb",
    )
    options = f"-k {home} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"], "start", log)
    try:
        yield PostgresServer(home)
    finally:
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], "stop", log)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """A new, empty database on the session's server, for one test: its name (``postgres_server.uri(name)``)."""
    return postgres_server.create_database()
