"""Deterministic sharding: the same sorted listing always cuts into the same shards with the same ids.

A shard is the unit of commit and resume. The function is pure so that a resumed run, given the plan saved with
the run, recomputes nothing: shard ids depend only on position in the sorted listing and the shard size.
"""

from __future__ import annotations


def shard_ids(num_inputs: int, shard_size: int) -> list[str]:
    """Shard id of each input of a sorted listing: zero-padded ``index // shard_size``."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    num_shards = max(1, -(-num_inputs // shard_size))
    width = max(5, len(str(num_shards - 1)))
    return [str(i // shard_size).zfill(width) for i in range(num_inputs)]
