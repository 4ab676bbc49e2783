import pytest

from jobs.planning.sharding import shard_ids


def test_shards_are_consecutive_runs_of_the_sorted_listing():
    assert shard_ids([1] * 7, 3) == ["00000"] * 3 + ["00001"] * 3 + ["00002"]


def test_rows_are_weighted_by_their_frames():
    # a video segment of 5 frames fills a shard of 4 on its own; images pack around it
    assert shard_ids([1, 5, 1, 1, 2, 1], 4) == ["00000", "00001", "00002", "00002", "00002", "00003"]


def test_ids_are_zero_padded_and_wide_enough():
    ids = shard_ids([1] * 1_000_001, 10)
    assert ids[0] == "000000" and ids[-1] == "100000"
    assert len({len(i) for i in ids}) == 1


def test_deterministic_and_rejects_bad_size():
    assert shard_ids([1] * 10, 4) == shard_ids([1] * 10, 4)
    assert shard_ids([], 5) == []
    with pytest.raises(ValueError):
        shard_ids([1, 1, 1], 0)
