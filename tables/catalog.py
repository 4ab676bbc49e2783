"""The Iceberg catalog and the tables in it: opened or made, with the project's own schemas.

The catalog is pyiceberg's ``SqlCatalog`` on a SQLAlchemy URI (``sqlite:///catalog.db``: a file next to the data
is a whole catalog, with nothing to run), or any catalog pyiceberg opens by name (``tables.connect``). The tables'
columns are ``schemas.tables``' Arrow schemas, never inferred, plus the hive partition keys ``run_date`` (a date)
and ``source``: the part files do not hold those two (hive keeps partition values in folder names only), so they
are identity partitions whose values each data file carries in the table's metadata, and Iceberg's readers fill
the columns from there, as for a Hive table migrated in place. A namespace names tables, so it comes from
untrusted input (OUT's folder name) and is reduced to a plain identifier first.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table, TableProperties

from common.errors import UsageError
from schemas import layout
from schemas.config import redacted_uri
from schemas.tables import DETECTIONS_SCHEMA, FRAMES_SCHEMA, TRACK_SUMMARIES_SCHEMA, TRACKS_SCHEMA

CATALOG_NAME = "yolonas_batch"
"""The catalog's name: a SQL catalog keeps it in every row, so a reader opens the same database under this name
(``load_catalog("yolonas_batch", type="sql", uri=…)``) to see the tables."""
PARTITION_FIELDS = (pa.field("run_date", pa.date32()), pa.field("source", pa.string()))
"""The hive partition keys as columns of the Iceberg tables, in partition order."""
ARROW_SCHEMAS = {
    layout.FRAMES: pa.schema([*FRAMES_SCHEMA, *PARTITION_FIELDS]),
    layout.DETECTIONS: pa.schema([*DETECTIONS_SCHEMA, *PARTITION_FIELDS]),
    layout.TRACKS: pa.schema([*TRACKS_SCHEMA, *PARTITION_FIELDS]),
    layout.TRACK_SUMMARIES: pa.schema([*TRACK_SUMMARIES_SCHEMA, *PARTITION_FIELDS]),
}
"""Each published table's columns: the job's own, then the partition keys."""
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_NAMESPACE = "yolonas_batch"
_URI_METRICS = f"{TableProperties.METRICS_MODE_COLUMN_CONF_PREFIX}.source_uri"
_SECRET_WORDS = ("secret", "token", "password", "credential", "access-key")
"""Words in the names of catalog properties whose values an error message must never quote."""


def open_catalog(
    uri: str, warehouse: str, flag: str = "--catalog", properties: Mapping[str, str] | None = None
) -> Catalog:
    """pyiceberg's SQL catalog at ``uri``, its tables' files under ``warehouse``, with more catalog
    ``properties`` (a FileIO's); ``UsageError`` in one line naming ``flag`` when it cannot be opened (a malformed
    URI, an unknown driver, a database that cannot be created or read)."""
    given = dict(properties or {})
    return opened(uri, flag, given, lambda: SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **given))


def opened(shown: str, flag: str, properties: Mapping[str, Any], make: Callable[[], Catalog]) -> Catalog:
    """``make()``'s catalog, once it has answered a listing of its namespaces: a catalog that connects only when
    first used (Glue, Hive) is then found unreachable here, before any work, rather than by the first publish.
    Any failure is a ``UsageError`` naming ``shown`` (a URI, shown without its password) and quoting no value of a
    secret property: each type of catalog fails with errors of its own (SQLAlchemy's, botocore's, thrift's,
    HTTP's, pyiceberg's), all of which mean the same here."""
    try:
        catalog = make()
        catalog.list_namespaces()
        return catalog
    except Exception as exc:
        reason = redacted_uri(first_line(exc))
        for key, value in properties.items():
            if any(word in key.lower() for word in _SECRET_WORDS) and isinstance(value, str) and value:
                reason = reason.replace(value, "***")
        raise UsageError(f"{flag}: cannot open {redacted_uri(shown)}: {reason}") from None


def namespace_of(out_path: str) -> str:
    """The default namespace of an output: its folder's name as an identifier (other characters become ``_``, with
    a short hash of the name when any had to, so that two names never meet; ``yolonas_batch`` and the hash for a
    name with nothing of an identifier in it)."""
    name = out_path.rstrip("/").rsplit("/", 1)[-1]
    if _IDENTIFIER.fullmatch(name):
        return name
    if not name:
        return _DEFAULT_NAMESPACE
    plain = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or _DEFAULT_NAMESPACE
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{'' if plain[0].isalpha() else 'out_'}{plain}_{digest}"


def check_namespace(namespace: str, flag: str = "--namespace") -> str:
    """A namespace given on the command line, as is when it is an identifier; ``UsageError`` otherwise (a dot would
    nest namespaces, and other characters reach the catalog's names and the warehouse's paths)."""
    if not _IDENTIFIER.fullmatch(namespace):
        raise UsageError(f"{flag} {namespace!r}: expected letters, digits and _, not starting with a digit")
    return namespace


def table_for(catalog: Catalog, namespace: str, name: str) -> Table:
    """The table ``namespace.name``, made first when missing (``UsageError`` for a table of that name with other
    columns, which the part files could not be added to): the job's columns and the partition keys, partitioned
    by identity on both keys, with the name mapping that reads the part files (written without Iceberg field ids)
    by column name, set in the same commit so no reader ever sees the table without it. ``source_uri``'s file
    statistics are kept whole, not cut to Iceberg's default 16 characters: URIs share long prefixes, and whole
    bounds let a lookup of some inputs (``tables.superseded``) skip the files that cannot hold them. pyiceberg's
    retry of a commit that lost a race is off: it would append the same shards again on top of the winner's, where
    failing lets the next publish see what the winner added."""
    catalog.create_namespace_if_not_exists(namespace)
    identifier = f"{namespace}.{name}"
    if catalog.table_exists(identifier):
        table = catalog.load_table(identifier)
        columns = [field.name for field in table.schema().fields]
        if columns != ARROW_SCHEMAS[name].names:
            raise UsageError(
                f"{identifier} is another table (columns {', '.join(columns)}): choose another --namespace"
            )
        return table
    with catalog.create_table_transaction(identifier, schema=ARROW_SCHEMAS[name]) as create:
        with create.update_spec() as spec:
            for field in PARTITION_FIELDS:
                spec.add_identity(field.name)
        mapping = create.table_metadata.schema().name_mapping.model_dump_json()
        create.set_properties(
            {
                TableProperties.DEFAULT_NAME_MAPPING: mapping,
                _URI_METRICS: "full",
                TableProperties.COMMIT_NUM_RETRIES: "0",
            }
        )
    return catalog.load_table(identifier)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (a database driver's can run over several), or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
