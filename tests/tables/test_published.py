"""``tables.published``: the record of the shards a table holds, a few bytes per run however many shards."""

from __future__ import annotations

from tables import published


def test_the_record_reads_back_what_was_written() -> None:
    record = published.merged({}, [("r1", "00000"), ("r1", "00001"), ("r1", "00002"), ("r1", "00007"), ("r2", "00003")])
    value = published.written(record)
    assert value == '{"r1":"0-2,7","r2":"3"}'
    assert published.read({published.PROPERTY: value}) == record
    assert published.holds(record, "r1", "00001") and not published.holds(record, "r1", "00003")
    assert not published.holds(record, "r3", "00000")


def test_a_table_without_the_record_holds_nothing() -> None:
    assert published.read({}) == {}


def test_a_run_of_many_shards_stays_short() -> None:
    record = published.merged({}, [("r", f"{n:05d}") for n in range(100_000)])
    assert published.written(record) == '{"r":"0-99999"}'
