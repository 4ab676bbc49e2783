"""``tables.connect``: the catalog a command names (``local``, a SQLAlchemy URI, a name configured the pyiceberg way)
opened for an output, local or on S3; one line without credentials when it cannot be."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog

from common.storage import Location, location
from tables.connect import connect
from tests.support.s3 import pyiceberg_s3_properties
from tests.support.two_runs import commit_newer_run, commit_older_run
from tests.tables.conftest import exported, table_rows
from yolonas_batch.cli import main


@pytest.fixture(autouse=True)
def no_pyiceberg_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalogs from the test's variables only: the machine's ``~/.pyiceberg.yaml`` comes after this folder."""
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))


def test_local_is_a_sqlite_catalog_inside_the_output(out: Location, capsys) -> None:
    commit_older_run(out)
    commit_newer_run(out)
    assert main(["iceberg", out.path, "--catalog", "local"]) == 0
    assert capsys.readouterr().out.startswith("iceberg: out.frames: 3 shards added")
    database = Path(out.path) / "_iceberg" / "catalog.db"
    reader = load_catalog("yolonas_batch", type="sql", uri=f"sqlite:///{database}")
    assert table_rows(reader, "out") == exported(out)


def test_a_named_catalog_keeps_its_own_warehouse_and_otherwise_gets_the_outputs(
    tmp_path: Path, out: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYICEBERG_CATALOG__OWN__URI", f"sqlite:///{tmp_path / 'own.db'}")
    monkeypatch.setenv("PYICEBERG_CATALOG__OWN__WAREHOUSE", (tmp_path / "elsewhere").as_uri())
    monkeypatch.setenv("PYICEBERG_CATALOG__BARE__URI", f"sqlite:///{tmp_path / 'bare.db'}")
    for name, warehouse in (("own", tmp_path / "elsewhere"), ("bare", Path(out.path) / "_iceberg")):
        catalog = connect(name, out, {})
        assert catalog.name == name
        catalog.create_namespace("ns")
        assert (
            catalog.create_table("ns.t", schema=pa.schema([pa.field("id", pa.int64())])).location()
            == (warehouse / "ns" / "t").as_uri()
        )


def test_a_catalog_that_cannot_be_opened_is_one_line_without_its_credentials(
    out: Location, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    commit_older_run(out)
    monkeypatch.setenv("PYICEBERG_CATALOG__DOWN__URI", "postgresql://cams:hunter2@/cams?host=/nonexistent")
    assert main(["iceberg", out.path, "--catalog", "down"]) == 2
    said = capsys.readouterr().err
    assert said.startswith("yolonas-batch iceberg: error: --catalog: cannot open down: ") and said.count("\n") == 1
    assert "hunter2" not in said
    assert main(["iceberg", out.path, "--catalog", "nowhere"]) == 2
    assert capsys.readouterr().err == (
        "yolonas-batch iceberg: error: --catalog: cannot open nowhere: no catalog of that name in "
        f"{Path(out.path).parent / '.pyiceberg.yaml'} nor PYICEBERG_CATALOG__NOWHERE__* variables (or give a "
        "SQLAlchemy URI, or local; docs/tables.md)\n"
    )


def test_an_output_on_s3_is_published_through_glue(
    s3_environment: dict[str, str], s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """moto's Glue as the catalog, configured by one variable (endpoint, region and credentials: the AWS
    environment, as for the job); the warehouse in the output on moto's S3."""
    out = location(f"s3://{s3_bucket}/out")
    commit_older_run(out)
    commit_newer_run(out)
    namespace = s3_bucket.replace("-", "_")  # the server's Glue databases outlive a test
    monkeypatch.setenv("PYICEBERG_CATALOG__LAKE__TYPE", "glue")
    assert main(["iceberg", out.uri, "--catalog", "lake", "--namespace", namespace]) == 0
    assert capsys.readouterr().out.startswith(f"iceberg: {namespace}.frames: 3 shards added")
    reader = load_catalog("lake", type="glue", **pyiceberg_s3_properties(s3_endpoint))
    assert reader.load_table(f"{namespace}.frames").location() == f"{out.uri}/_iceberg/{namespace}.db/frames"
    assert table_rows(reader, namespace) == exported(out)
