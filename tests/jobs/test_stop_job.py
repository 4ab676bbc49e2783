"""``detect`` stopped by SIGTERM as Kubernetes, ``ray job stop`` or systemd stop it: a real ``python -m jobs.detect``
process on the session's Ray, signalled once its first shard is committed. It exits 143 within the grace, its
attempt recorded ``interrupted`` and its lease released, with no abort dump; the same command line at once resumes it
to every frame once (run in the test's process: ``job_runs.rerun_command``). A second SIGTERM during the stop's grace
exits at once. Into S3 with ``--iceberg`` (a PostgreSQL catalog), the stopped and the resumed attempts together
publish every shard to the tables once. The same through ``ray job stop``: ``test_ray_job_submit.py``; ``track``:
``tracking/test_runner.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from pyiceberg.catalog import load_catalog

from common.errors import EXIT_SIGTERM
from common.storage import location
from schemas import layout
from schemas.choices import DEFAULT_STOP_GRACE_S
from tests.conftest import REPO
from tests.support.job_runs import commit_markers, lease_released, photo_keys, rerun_command, wait_until
from tests.support.photos import numbered_photos
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, pyiceberg_s3_properties, s3_client, s3_storage_options
from tests.tables.conftest import added_shards, exported, table_rows

pytestmark = pytest.mark.timeout(300)

PHOTOS = 12
SHARD_SIZE = 2
BATCH_SIZE = 4
"""Three model batches of two shards each: a SIGTERM sent once the first shard is committed lands mid-run."""
STOPPING = "detect: SIGTERM: stopping"
PG_PASSWORD, S3_SECRET = "pg-password-never-shown", "s3-secret-never-shown"


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coco_images) -> Path:
    return numbered_photos(tmp_path_factory.mktemp("stop-input") / "photos", coco_images, PHOTOS)


class Driver:
    """A ``detect`` process in a process group of its own, its output in files the test reads while it runs."""

    def __init__(self, command: list[str], env: dict[str, str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout, self.stderr = logs / "stdout", logs / "stderr"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True, stdout=out, stderr=err)

    def wait_for(self, condition, what: str, timeout_s: float = 200) -> None:
        if not wait_until(lambda: condition() or self.process.poll() is not None, timeout_s) or not condition():
            pytest.fail(f"no {what}; exit {self.process.poll()}:\n{self.log()}")

    def signal_and_wait(self, timeout_s: float) -> tuple[int, float]:
        """SIGTERM to the driver alone (as Kubernetes sends it to a container's first process): its exit code and
        how long it took to exit."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        took_s = time.monotonic() - sent
        print(f"exited {code} {took_s:.1f} s after SIGTERM")  # for --durations' neighbours: what the stop cost
        return code, took_s

    def log(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()


def _command(photos: Path, out: str, weights: Path, *options: str, entry: tuple[str, ...] = ("jobs.detect",)):
    return [
        sys.executable, "-m", *entry, str(photos), "--output", out, "--weights", str(weights),
        "--shard-size", str(SHARD_SIZE), "--batch-size", str(BATCH_SIZE), *options,
    ]  # fmt: skip


def _env(ray_cluster) -> dict[str, str]:
    return {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}


def _manifest(out: Path) -> dict:
    return json.loads(next(p for p in (out / "_runs").glob("*.json") if layout.parse_manifest(p.name)).read_text())


def _assert_stopped_in_order(code: int, took_s: float, stderr: str) -> None:
    assert code == EXIT_SIGTERM, stderr
    assert took_s < DEFAULT_STOP_GRACE_S, f"exited {took_s:.1f} s after SIGTERM"
    assert STOPPING in stderr
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr, stderr  # no abort dump


def test_a_second_sigterm_during_the_grace_exits_at_once(tmp_path, photos, probe_weights, ray_cluster):
    """The stop's grace held open by a publish that never ends (``tests/support/held_publish.py``) and a grace of
    ten minutes: only the second signal can end the process within the test's bound."""
    out, held = tmp_path / "out", tmp_path / "held"
    command = _command(
        photos, str(out), probe_weights, "--stop-grace", "600", entry=("tests.support.held_publish", str(held))
    )
    driver = Driver(command, _env(ray_cluster), tmp_path / "logs")
    driver.wait_for(lambda: held.exists() and commit_markers(out), "held publish after a committed shard")
    driver.process.send_signal(signal.SIGTERM)
    driver.wait_for(lambda: STOPPING in driver.stderr.read_text(), "stop begun")
    code, took_s = driver.signal_and_wait(timeout_s=60)

    stderr = driver.stderr.read_text()
    assert code == EXIT_SIGTERM, stderr
    assert took_s < 10, f"exited {took_s:.1f} s after the second SIGTERM"
    last = "detect: SIGTERM while stopping: exiting at once (exit 143), the lease left to expire"
    assert stderr.strip().splitlines()[-1] == last and "Traceback" not in stderr, stderr
    assert _manifest(out)["status"] == "running"  # nothing recorded: the next run resumes it as a killed one's


def test_sigterm_stops_a_run_into_s3_in_order_and_the_same_command_resumes_it(
    tmp_path, photos, probe_weights, ray_cluster, s3_endpoint, s3_bucket, postgres_server, postgres_database, capsys,
    monkeypatch,
):  # fmt: skip
    """Stopped mid-run, the run records its attempt ``interrupted`` with what it committed, releases its lease and
    removes its staged rows; the same command resumes only what is left. With ``--iceberg`` to a catalog configured
    the pyiceberg way (SQL on the session's PostgreSQL server, the warehouse in the output on S3), the stopped run
    publishes what it committed, the resumed one the rest: every shard in the tables once, their rows ``export``'s.
    The catalog's password is neither logged nor saved. (The stop itself does not depend on where the output is:
    an output on S3 is the case with the most to stop in order.)"""
    out = f"s3://{s3_bucket}/out"
    options = {**s3_storage_options(s3_endpoint), "secret": S3_SECRET}  # moto checks no signature
    catalog_uri = postgres_server.uri(postgres_database, password=PG_PASSWORD)  # trusted: the password is ignored
    monkeypatch.setenv("PYICEBERG_CATALOG__CAMS__URI", catalog_uri)  # the driver's environment too
    options_args = ("--storage-options", json.dumps(options), "--iceberg", "cams", "--stop-grace", "2")
    command = _command(photos, out, probe_weights, *options_args)
    # The shards after the first are held unpublished (``tests/support/held_publish.py``), so that the stop lands
    # mid-run however fast the machine; the grace then runs out and the held publishes are cancelled.
    held = tmp_path / "held"
    stopped = _command(photos, out, probe_weights, *options_args, entry=("tests.support.held_publish", str(held)))
    client = s3_client(s3_endpoint)

    def keys() -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="out/").get("Contents", [])]

    driver = Driver(stopped, _env(ray_cluster), tmp_path / "logs")
    driver.wait_for(
        lambda: held.exists() and any(layout.parse_marker(k.removeprefix("out/_runs/")) for k in keys()),
        "held publish after a committed shard",
    )
    code, took_s = driver.signal_and_wait(timeout_s=DEFAULT_STOP_GRACE_S + 60)

    _assert_stopped_in_order(code, took_s, driver.stderr.read_text())
    manifest_key = next(k for k in keys() if layout.parse_manifest(k.removeprefix("out/_runs/")))
    manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    assert (manifest["status"], manifest["attempts"][-1]["stopped_by"]) == ("interrupted", "SIGTERM")
    assert lease_released(client.get_object(Bucket=s3_bucket, Key="out/" + layout.lease())["Body"].read())
    committed = sum(1 for k in keys() if layout.parse_marker(k.removeprefix("out/_runs/")))
    assert committed == 1, "the held shards were never published"
    assert manifest["error"].startswith(f"stopped by SIGTERM: {committed} of {PHOTOS // SHARD_SIZE} shards committed")
    assert f"run {manifest['run_id']} interrupted: stopped by SIGTERM" in driver.stdout.read_text()
    staged = f"out/{layout.staging(manifest['run_id'])}"
    assert not [k for k in keys() if k.startswith(staged)], "the staged rows are removed"
    assert manifest["iceberg"] == {"namespace": "out", "published_shards": committed, "error": None}, driver.log()

    rerun = rerun_command(command, capsys)
    assert rerun.code == 0, rerun.log
    assert f"{PHOTOS - SHARD_SIZE * committed} items to process" in rerun.stdout
    resumed = json.loads(client.get_object(Bucket=s3_bucket, Key=manifest_key)["Body"].read())
    assert [a["stopped_by"] for a in resumed["attempts"]] == ["SIGTERM", None]
    s3 = pafs.S3FileSystem(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, endpoint_override=s3_endpoint, region=REGION, scheme="http"
    )
    frames = ds.dataset(f"{s3_bucket}/out/frames", format="parquet", partitioning="hive", filesystem=s3)
    table = frames.to_table(columns=["source_uri", "frame_index"])
    assert sorted(zip(*table.to_pydict().values())) == photo_keys(photos)

    shards = PHOTOS // SHARD_SIZE
    assert f"iceberg: out.frames and out.detections hold {shards} of the run's {shards} committed shards" in rerun.log
    reader = load_catalog("cams", type="sql", uri=catalog_uri, **pyiceberg_s3_properties(s3_endpoint))
    assert table_rows(reader, "out") == exported(location(out, options))
    once = {(manifest["run_id"], shard): 1 for shard in range(shards)}
    assert added_shards(reader, "out", "frames") == once == added_shards(reader, "out", "detections")
    saved = [client.get_object(Bucket=s3_bucket, Key=k)["Body"].read().decode() for k in keys() if k.endswith(".json")]
    assert not [text for text in [driver.log(), rerun.log, *saved] if PG_PASSWORD in text or S3_SECRET in text]


def test_sigterm_while_planning_stops_before_anything_is_recorded(tmp_path, photos):
    """Planning held where a user's would wait on slow storage: the weights are a named pipe nobody writes, so
    reading them blocks once the lease is taken. No Ray is started."""
    out, weights = tmp_path / "out", tmp_path / "weights.pth"
    os.mkfifo(weights)
    driver = Driver(_command(photos, str(out), weights), dict(os.environ), tmp_path / "logs")
    driver.wait_for(lambda: (out / layout.lease()).exists(), "lease taken")
    code, took_s = driver.signal_and_wait(timeout_s=60)

    stderr = driver.stderr.read_text()
    assert code == EXIT_SIGTERM and took_s < 10, stderr
    line = "python -m jobs.detect: stopped by SIGTERM before the run started; nothing recorded (exit 143)"
    assert STOPPING in stderr and stderr.strip().splitlines()[-1] == line, stderr
    assert lease_released((out / layout.lease()).read_bytes())
    assert not [p for p in (out / "_runs").glob("*.json") if layout.parse_manifest(p.name)], "no manifest"
