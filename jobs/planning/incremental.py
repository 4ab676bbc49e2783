"""``--incremental``: which listed inputs earlier runs into the same output already answered.

An input counts as answered when one earlier run with the same model fingerprint (model, weights, thresholds,
sampling) planned it with the same size and version (ETag or mtime) and committed every work item of it (a video
may be cut into ranges across shards). A changed file, a new model or an input no single run committed whole is
processed again; nothing else is.

What the runs answered is kept per model fingerprint in ``jobs.planning.answered_index``, so that a start costs the
index and the runs added since, not the whole history: a run is folded in when it closes (``record_run``), and a
start reads the index, lists the names of the run manifests, and reads the files of only the runs the index does
not cover (runs that never closed, runs whose fold a concurrent writer overwrote, all the runs of an output from
before the index), folding them in for the next start.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc

from common.epochs import EpochRecords
from jobs.planning.answered_index import AnsweredIndex
from jobs.planning.listing import Listing
from jobs.planning.plan import Plan
from jobs.records.run_store import RunStore
from jobs.records.shard_markers import ShardMarkers
from schemas.answered_index import ANSWERED_SCHEMA
from schemas.manifest import RunManifest
from workers.errors import one_line

_KEYS = ["uri", "size", "version"]

READ_THREADS = 16
"""Runs the index does not cover read at once: a few small reads each, which on an object store wait on the
network (an output from before the index has all of its runs read once)."""


def new_or_changed(listing: Listing, store: RunStore, model_fingerprint: str) -> Listing:
    """The listing without inputs answered by earlier runs of the same model into this output."""
    answered = answered_inputs(store, model_fingerprint)
    if answered.num_rows == 0:
        return listing
    remaining = _keyed(listing.table).join(_filled(answered), keys=_KEYS, join_type="left anti")
    order = pc.sort_indices(remaining, sort_keys=[("uri", "ascending")])
    table = listing.table.take(remaining.column("row").take(order))
    return Listing(table=table, skipped=listing.skipped)


def answered_inputs(store: RunStore, model_fingerprint: str) -> pa.Table:
    """Every input earlier runs of the model answered (``ANSWERED_SCHEMA``; one row per answering run), from the
    index with the runs it does not cover folded in; the index is rewritten when that changed it."""
    where = store.index_location(model_fingerprint)
    stored = AnsweredIndex.read(where)  # before listing: whatever it covers then has a manifest to be listed
    run_ids = store.run_ids()
    index = stored.of_runs(set(run_ids))
    uncovered = [run_id for run_id in run_ids if run_id not in index.covers]
    records = EpochRecords.listed(store.out) if uncovered else None  # listed once, for every run read
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        read = pool.map(lambda run_id: _from_files(store, run_id, model_fingerprint, records), uncovered)
        reads = dict(zip(uncovered, read))
    final = {run_id for run_id, (_, closed) in reads.items() if closed}
    index = index.with_runs({run_id: answers for run_id, (answers, _) in reads.items()}, final)
    if not index.same_as(stored):
        index.write(where)
    return index.answers


def record_run(store: RunStore, manifest: RunManifest, plan: Plan, stream: TextIO) -> None:
    """Fold a run into its model's index as it closes, once its manifest is saved. Always, even when the index
    covers it already: a resumed run commits more. The index is a cache, so a failure to update it only costs
    the next start a read of this run's files, and is reported, not raised."""
    committed = {shard for shard, state in manifest.shards.items() if state == "committed"}
    where = store.index_location(manifest.model_fingerprint)
    try:
        index = AnsweredIndex.read(where)
        updated = index.with_runs({manifest.run_id: run_answers(plan, committed)}, {manifest.run_id})
        if not updated.same_as(index):  # a rerun that committed nothing new leaves the index as it is
            updated.write(where)
    except OSError as exc:  # storage errors, as the storage layer raises them once its retries are spent
        print(
            f"note: answered-inputs index not updated ({one_line(exc, 'first')}); the next --incremental start "
            "reads this run's files instead",
            file=stream,
        )


def run_answers(plan: Plan, committed: set[str]) -> pa.Table:
    """(uri, size, version) of the inputs of ``plan`` all of whose work items are in ``committed`` shards. In one
    plan an input's URI is unique, and its items share its size and version."""
    table = plan.table
    done = pc.is_in(table.column("shard_id"), pa.array(sorted(committed), pa.string()))
    undone = pc.unique(table.column("source_uri").filter(pc.invert(done)))
    whole = pc.and_(done, pc.invert(pc.is_in(table.column("source_uri"), undone)))
    answered = table.filter(whole).select(["source_uri", "size", "version"]).rename_columns(_KEYS)
    return answered.group_by(_KEYS).aggregate([])


def _from_files(
    store: RunStore, run_id: str, model_fingerprint: str, records: EpochRecords | None
) -> tuple[pa.Table, bool]:
    """What a run the index does not cover answered, read from its own files (its manifest, then for a run of
    this model its plan and markers), and whether that is final. A run still running (or killed) answers what it
    committed so far but stays uncovered, so the next start reads it again; a run of another model answers
    nothing here, for good."""
    manifest = store.manifest(run_id)
    if manifest.model_fingerprint != model_fingerprint:
        return ANSWERED_SCHEMA.empty_table(), True
    plan = Plan.load(store.plan_location(run_id))
    committed = ShardMarkers(store.out, run_id, records).committed_ids()
    return run_answers(plan, committed), manifest.status != "running"


def _keyed(table: pa.Table) -> pa.Table:
    keyed = _filled(table.select(_KEYS))
    return keyed.append_column("row", pa.array(range(table.num_rows), pa.int64()))


def _filled(keys: pa.Table) -> pa.Table:
    """Nulls (manifest entries are not looked up) made comparable: Arrow joins never match null keys."""
    return pa.table(
        {
            "uri": keys.column("uri"),
            "size": pc.fill_null(keys.column("size"), -1),
            "version": pc.fill_null(keys.column("version"), ""),
        }
    )
