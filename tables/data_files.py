"""A committed part file as an Iceberg data file, in place: its statistics read from its own footer, its partition
from its folder.

pyiceberg's ``Transaction.add_files`` would infer each file's partition from the column statistics of the partition
columns, and the part files hold no ``run_date`` or ``source`` column (hive keeps them in the folder names): it
would add every file under a null partition, so a reader would see null keys. This builds the same ``DataFile``
that ``add_files`` builds, with pyiceberg's own footer statistics, and takes the partition values from the path,
which ``schemas.layout`` defines; ``publish`` appends them with the fast append ``add_files`` itself uses. Nothing
is copied or rewritten.
"""

from __future__ import annotations

import posixpath
from datetime import date

import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record

from common.committed_files import relative
from common.errors import UsageError
from common.storage import Location
from schemas import layout

_EPOCH_DAY = date(1970, 1, 1)


def data_file(out: Location, path: str, metadata: TableMetadata) -> DataFile:
    """The data file of the part file at ``path`` (in ``out``, as ``common.committed_files`` lists it) for a table
    of ``metadata``, named by its URI; ``UsageError`` for a file outside a partition folder (not the job's
    layout)."""
    part = out.child(relative(out, path))
    folder = posixpath.dirname(relative(out, path)).split("/", 1)[-1]
    keys = layout.parse_partition(folder)
    if keys is None:
        raise UsageError(f"{out.child(folder).uri} is not a partition folder (run_date=YYYY-MM-DD/source=NAME)")
    run_date, source = keys
    with part.fs.open(part.path, "rb") as stream:
        footer = pq.read_metadata(stream)
    schema = metadata.schema()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer,
        stats_columns=compute_statistics_plan(schema, metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=part.uri,
        file_format=FileFormat.PARQUET,
        partition=Record((date.fromisoformat(run_date) - _EPOCH_DAY).days, source),
        file_size_in_bytes=part.fs.size(part.path),
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )
