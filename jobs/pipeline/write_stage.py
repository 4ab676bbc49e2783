"""The write stage of the Ray Data pipeline: result rows staged to storage where they were produced, a receipt
for each staged file sent on to the driver.

Writing here, on as many tasks as ``--write-workers`` allows, rather than on the driver, is what lets output
throughput grow with the cluster: the driver never sees a box, only receipts (``schemas.tables.RECEIPT_SCHEMA``),
and publishing a complete shard is a task too (``jobs.commit.publish``).

A staged file holds one shard's rows of one result block, under ``_runs/<run_id>/staging/<shard>/``, outside the
tables' folders, so no reader ever sees it. Its name is a digest of the rows' keys: Ray redoes a failed task
with the same input, so a redone block stages the same rows under the same name and overwrites its own file.
Staged files are not flushed to disk: one lost in a power cut fails its shard's publishing, which is redone.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.commit.committer import ShardCommitter, staged_bytes
from schemas.tables import RECEIPT_SCHEMA, STATUS_ERROR, STATUS_NONE, row_keys


def write_results(results: pa.Table, *, committer: ShardCommitter) -> pa.Table:
    """Stage each shard's rows of ``results`` and return one receipt per staged file."""
    receipts = []
    for shard_id in pc.unique(results.column("shard_id")).to_pylist():
        rows = results.filter(pc.equal(results.column("shard_id"), shard_id))
        keys = row_keys(rows)
        unique, first = np.unique(keys, return_index=True)
        if len(unique) < len(keys):  # a frame twice in one block: staged once
            rows, keys = rows.take(first), unique
        name = hashlib.sha1(shard_id.encode() + unique.tobytes()).hexdigest()[:20] + ".arrow"
        committer.staged(shard_id, name).write_bytes_atomic(staged_bytes(rows), durable=False)
        receipts.append(_receipt(shard_id, name, rows, keys))
    return pa.Table.from_pylist(receipts, schema=RECEIPT_SCHEMA)


def _receipt(shard_id: str, name: str, rows: pa.Table, keys: np.ndarray) -> dict:
    status = rows.column("status")
    item_rows = rows.column("item_rows").to_numpy()
    last = np.flatnonzero(item_rows)
    return {
        "shard_id": shard_id,
        "file": name,
        "keys": keys,
        "none_keys": keys[pc.equal(status, STATUS_NONE).to_numpy(zero_copy_only=False)],
        "error_keys": keys[pc.equal(status, STATUS_ERROR).to_numpy(zero_copy_only=False)],
        "last_items": rows.column("item").to_numpy()[last],
        "last_rows": item_rows[last],
    }
