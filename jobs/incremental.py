"""``--incremental``: which listed inputs earlier runs into the same output already answered.

An input counts as answered when an earlier run with the same model fingerprint (model, weights, thresholds,
sampling) planned it with the same size and version (ETag or mtime) and committed every shard that held it.
A changed file, a new model or a failed shard therefore gets processed again; nothing else does.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from jobs.commit import ShardCommitter
from jobs.listing import Listing
from jobs.planning import Plan
from jobs.run_store import RunStore

_KEYS = ["uri", "size", "version"]


def new_or_changed(listing: Listing, store: RunStore, model_fingerprint: str) -> Listing:
    """The listing without inputs answered by earlier runs of the same model into this output."""
    answered = _answered(store, model_fingerprint)
    if answered.num_rows == 0:
        return listing
    remaining = _keyed(listing.table).join(answered, keys=_KEYS, join_type="left anti")
    order = pc.sort_indices(remaining, sort_keys=[("uri", "ascending")])
    table = listing.table.take(remaining.column("row").take(order))
    return Listing(table=table, skipped=listing.skipped)


def _answered(store: RunStore, model_fingerprint: str) -> pa.Table:
    """(uri, size, version) of every input all of whose work items earlier runs committed."""
    done, undone = [], []
    for manifest in store.manifests():
        if manifest.model_fingerprint != model_fingerprint:
            continue
        plan = Plan.load(store.plan_location(manifest.run_id)).table
        committed = ShardCommitter(store.out, manifest.run_id, ()).committed_ids()
        mask = pc.is_in(plan.column("shard_id"), pa.array(sorted(committed), pa.string()))
        keys = plan.select(["source_uri", "size", "version"]).rename_columns(_KEYS)
        done.append(keys.filter(mask))
        undone.append(keys.filter(pc.invert(mask)))
    if not done:
        return pa.table(
            {"uri": pa.array([], pa.string()), "size": pa.array([], pa.int64()), "version": pa.array([], pa.string())}
        )
    answered = _filled(pa.concat_tables(done)).group_by(_KEYS).aggregate([])
    return answered.join(_filled(pa.concat_tables(undone)), keys=_KEYS, join_type="left anti")


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
