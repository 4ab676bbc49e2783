import pytest

from jobs.sharding import shard_ids


def test_shards_are_consecutive_runs_of_the_sorted_listing():
    assert shard_ids(7, 3) == ["00000"] * 3 + ["00001"] * 3 + ["00002"]


def test_ids_are_zero_padded_and_wide_enough():
    ids = shard_ids(1_000_001, 10)
    assert ids[0] == "000000" and ids[-1] == "100000"
    assert len({len(i) for i in ids}) == 1


def test_deterministic_and_rejects_bad_size():
    assert shard_ids(10, 4) == shard_ids(10, 4)
    assert shard_ids(0, 5) == []
    with pytest.raises(ValueError):
        shard_ids(3, 0)
