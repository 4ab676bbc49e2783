"""``tables.catalog``: namespaces from untrusted folder names, and tables made once with the project's schemas."""

from __future__ import annotations

import pyarrow as pa
import pytest

from common.errors import UsageError
from schemas.tables import DETECTIONS_SCHEMA, FRAMES_SCHEMA
from tables.catalog import check_namespace, namespace_of, table_for


@pytest.mark.parametrize(
    ("path", "namespace"),
    [
        ("/data/detections", "detections"),
        ("/data/detections/", "detections"),
        ("/data/Cams_2026", "Cams_2026"),
        ("/data/my out.v2", "my_out_v2_"),
        ("/data/2026-01", "out_2026_01_"),
        ("/data/день", "yolonas_batch_"),
        ("/", "yolonas_batch"),
    ],
)
def test_the_default_namespace_is_an_identifier(path: str, namespace: str) -> None:
    made = namespace_of(path)
    assert made.startswith(namespace) if namespace.endswith("_") else made == namespace
    assert check_namespace(made) == made


def test_names_changed_into_the_same_identifier_stay_apart() -> None:
    assert namespace_of("/data/my out") != namespace_of("/data/my-out")
    assert namespace_of("/data/день") != namespace_of("/data/ночь")


@pytest.mark.parametrize("namespace", ["a.b", "1st", "x;drop", "", "a b"])
def test_a_namespace_that_is_not_an_identifier_is_refused(namespace: str) -> None:
    with pytest.raises(UsageError, match="--namespace"):
        check_namespace(namespace)


def test_tables_are_made_once_with_the_jobs_columns_and_partitions(catalog) -> None:
    for name, schema in (("frames", FRAMES_SCHEMA), ("detections", DETECTIONS_SCHEMA)):
        table = table_for(catalog, "ns", name)
        assert table_for(catalog, "ns", name).metadata.table_uuid == table.metadata.table_uuid
        columns = [field.name for field in table.schema().fields]
        assert columns == [*schema.names, "run_date", "source"]
        assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
            ("run_date", "identity"),
            ("source", "identity"),
        ]
        assert table.schema().find_field("run_id").required
        assert table.name_mapping() is not None
        assert table.properties["commit.retry.num-retries"] == "0"  # a lost race fails rather than appends twice


def test_a_table_of_the_name_with_other_columns_is_refused(catalog) -> None:
    catalog.create_namespace("ns")
    catalog.create_table("ns.frames", schema=pa.schema([pa.field("id", pa.int64())]))
    with pytest.raises(UsageError, match=r"^ns.frames is another table \(columns id\): choose another --namespace$"):
        table_for(catalog, "ns", "frames")
