"""``common.epochs``: which markers count, on a local output holding only epoch records. A marker counts where no
later record of the chain exists, or the first names it; markers from before epochs always count; of a shard's
markers that count the highest epoch is its commit; a record off the chain (written late) is ignored; no record
older than the markers judged is read."""

from __future__ import annotations

from pathlib import Path

from common.epochs import EpochRecords
from common.storage import Location, location
from schemas import layout
from schemas.layout import ShardFile
from schemas.manifest import EpochRecord

RUN = "20260101T080000Z-aaaaaa"
OTHER = "20260102T080000Z-bbbbbb"


def _out(tmp_path: Path, records: dict[int, list[ShardFile]], follows: dict[int, int] | None = None) -> Location:
    """An output with the epoch records ``records`` (epoch -> the markers it names), each following the one before
    it in ``records`` unless ``follows`` says otherwise."""
    out = location(str(tmp_path / "out"))
    previous = 0
    for epoch, named in records.items():
        record = EpochRecord(
            epoch=epoch,
            follows=(follows or {}).get(epoch, previous),
            run_id=RUN,
            written_at="2026-01-01T08:00:00+00:00",
            counted=[layout.marker(*m) for m in named],
        )
        out.child(layout.epoch_record(epoch)).write_bytes_atomic(record.model_dump_json().encode())
        previous = epoch
    return out


def _counted(out: Location, *markers: ShardFile) -> set[ShardFile]:
    return set(EpochRecords.listed(out).counted(markers).values())


def test_without_a_record_every_marker_counts_and_a_shards_highest_epoch_is_its_commit(tmp_path):
    out = _out(tmp_path, {})
    markers = [ShardFile(RUN, "00000", 1), ShardFile(RUN, "00000", 3), ShardFile(RUN, "00001", 2)]
    assert EpochRecords.listed(out).counted(markers) == {(RUN, "00000"): markers[1], (RUN, "00001"): markers[2]}


def test_a_marker_counts_only_if_the_first_record_after_its_epoch_names_it(tmp_path):
    on_time, late = ShardFile(RUN, "00000", 2), ShardFile(RUN, "00001", 2)
    out = _out(tmp_path, {2: [], 3: [on_time]})
    current = ShardFile(RUN, "00002", 3)  # no record after epoch 3: the holder's own
    assert _counted(out, on_time, late, current) == {on_time, current}


def test_a_late_marker_does_not_supersede_the_shards_commit(tmp_path):
    """A writer that lost the output lands a marker for a shard the new holder committed too: the new holder's
    counts, whether the late one has the higher epoch or not."""
    committed, late, redone = ShardFile(RUN, "00000", 4), ShardFile(RUN, "00000", 5), ShardFile(RUN, "00001", 6)
    stale = ShardFile(RUN, "00001", 5)
    out = _out(tmp_path, {5: [committed], 6: []})  # 6 took over from 5, whose markers landed after 6's record
    assert _counted(out, committed, late, redone, stale) == {committed, redone}


def test_a_record_after_skipped_epochs_judges_all_of_them(tmp_path):
    """Holders of epochs 2 and 3 took the lease and crashed before recording (or were ``track`` runs, which write
    no marker): the record of epoch 4 is the first after epochs 1 to 3."""
    named, unnamed, older = ShardFile(RUN, "00000", 3), ShardFile(RUN, "00001", 3), ShardFile(RUN, "00002", 1)
    out = _out(tmp_path, {1: [], 4: [named, older]})
    assert _counted(out, named, unnamed, older) == {named, older}


def test_markers_from_before_epochs_count_whatever_the_records_say(tmp_path):
    legacy = ShardFile(RUN, "00000", 0)
    out = _out(tmp_path, {1: [], 2: []})
    assert _counted(out, legacy, ShardFile(OTHER, "00000", 0)) == {legacy, ShardFile(OTHER, "00000", 0)}


def test_a_record_written_late_is_off_the_chain_and_changes_nothing(tmp_path):
    """The holder of epoch 3 listed the markers, checked its lease, then stalled past the takeover of epoch 4 and
    landed its record after 4's: 4 follows 2, so 3's record is off the chain, and what 4 decided holds."""
    counted_by_4 = ShardFile(RUN, "00000", 2)
    out = _out(tmp_path, {2: [], 3: [], 4: [counted_by_4]}, follows={4: 2})
    assert _counted(out, counted_by_4) == {counted_by_4}


def test_no_record_older_than_the_markers_judged_is_read(tmp_path):
    out = _out(tmp_path, {4: [ShardFile(RUN, "00000", 3)], 6: []}, follows={4: 2})
    out.child(layout.epoch_record(2)).write_bytes_atomic(b"not json")  # older than every marker judged below
    records = EpochRecords.listed(out)
    assert records.latest == 6
    markers = [ShardFile(RUN, "00000", 3), ShardFile(RUN, "00001", 6), ShardFile(RUN, "00002", 0)]
    assert set(records.counted(markers).values()) == set(markers)
    out.child(layout.epoch_record(7)).write_bytes_atomic(b"not json")
    mine = ShardFile(RUN, "00003", 7)
    assert set(EpochRecords.listed(out).counted([mine]).values()) == {mine}  # a holder's own: no record read


def test_no_records_folder_is_no_record(tmp_path):
    records = EpochRecords.listed(location(str(tmp_path / "absent")))
    assert (records.epochs, records.latest) == ([], 0)
