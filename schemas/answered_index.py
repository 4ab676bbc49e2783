"""The file ``--incremental`` keeps per model fingerprint of the inputs earlier runs answered
(``OUT/_runs/_index/<model_fingerprint>.parquet``), declared once, never inferred."""

from __future__ import annotations

import pyarrow as pa

ANSWERED_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("version", pa.string()),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)
"""One row per input a run answered: it planned the input with this ``size`` and ``version`` (as listed: null for
entries of a manifest) and committed every work item of it. An input answered by several runs has a row for each,
so that the rows of a run whose manifest is gone can be dropped without losing another run's answer."""

COVERS_KEY = b"yolonas_batch.covers"
"""Parquet metadata key of the file: a JSON list of the run ids whose every answer is in the file."""
