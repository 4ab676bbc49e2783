"""Deterministic sharding: the same sorted plan always cuts into the same shards with the same ids.

A shard is the unit of commit and resume. The function is pure so that a resumed run, given the plan saved with
the run, recomputes nothing: shard ids depend only on the order of the plan's rows, their weights (frames each
row is expected to give: 1 for an image, the sampled frames of a video segment) and the shard size.
"""

from __future__ import annotations

from typing import Sequence


def shard_ids(weights: Sequence[int], shard_size: int) -> list[str]:
    """Shard id of each row of a sorted plan: rows fill a shard until the next would take it past
    ``shard_size`` frames (a row heavier than that gets a shard of its own); ids are zero-padded counters."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    numbers, shard, filled = [], 0, 0
    for weight in weights:
        if filled and filled + weight > shard_size:
            shard, filled = shard + 1, 0
        numbers.append(shard)
        filled += weight
    width = max(5, len(str(shard)))
    return [str(n).zfill(width) for n in numbers]
