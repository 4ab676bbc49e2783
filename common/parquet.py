"""A table as the bytes of one Parquet file, zstd-compressed: how the job writes every file it stores (part files,
plans, the answered-inputs index, tracks), so that each is uploaded in one atomic write of known bytes."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
