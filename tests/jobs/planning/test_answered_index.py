"""``--incremental``'s answered inputs and their index, on run histories written with the job's own code (no Ray):
which inputs count as answered, and that a start reads the index and the runs it does not cover, not every run."""

from __future__ import annotations

import io
import os

import pyarrow as pa
import pytest

from common.storage import location
from jobs.planning.answered_index import AnsweredIndex
from jobs.planning.incremental import new_or_changed, record_run
from jobs.planning.listing import Listing
from jobs.planning.plan import Plan
from jobs.planning.segments import Segment
from jobs.records.run_store import RunStore
from schemas.manifest import RunManifest
from tests.support.outputs import FINGERPRINT, MODEL_FINGERPRINT, commit_shard, history_run, images
from tests.support.s3 import FlakyProxy, s3_storage_options


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(location(str(tmp_path / "out")))


def _left(store: RunStore, listing: Listing, model_fingerprint: str = MODEL_FINGERPRINT) -> list[str]:
    return new_or_changed(listing, store, model_fingerprint).table.column("uri").to_pylist()


def _uris(listing: Listing) -> list[str]:
    return listing.table.column("uri").to_pylist()


def _index(store: RunStore, model_fingerprint: str = MODEL_FINGERPRINT) -> AnsweredIndex:
    return AnsweredIndex.read(store.index_location(model_fingerprint))


def _spoil(store: RunStore, run_id: str) -> None:
    """Make a run's manifest and plan unreadable: a start that still works never read them."""
    store.manifest_location(run_id).write_bytes_atomic(b"{not a manifest")
    store.plan_location(run_id).write_bytes_atomic(b"not parquet")


def _commit(store: RunStore, manifest: RunManifest, shard_id: str) -> RunManifest:
    """Commit one more shard of a run, as a resumed attempt does; the manifest as that attempt would close it."""
    commit_shard(store, manifest.run_id, shard_id, items=5)
    return manifest.model_copy(update={"shards": {**manifest.shards, shard_id: "committed"}, "status": "completed"})


def test_a_start_folds_the_earlier_runs_into_the_index_and_then_reads_only_the_index(store):
    first, _ = history_run(store, images(range(0, 10)), hour=0)
    second, _ = history_run(store, images(range(10, 20)), hour=1)

    assert _left(store, images(range(25))) == _uris(images(range(20, 25)))
    index = _index(store)
    assert index.covers == {first.run_id, second.run_id} and index.answers.num_rows == 20

    _spoil(store, first.run_id)
    _spoil(store, second.run_id)
    assert _left(store, images(range(25))) == _uris(images(range(20, 25)))


def test_a_run_is_folded_in_when_it_closes_and_again_when_a_resumed_attempt_closes(store):
    manifest, plan = history_run(store, images(range(10)), hour=0, shard_size=5, uncommitted={"00001"})
    manifest = manifest.model_copy(update={"status": "failed"})
    closing = io.StringIO()
    record_run(store, manifest, plan, closing)
    assert closing.getvalue() == "" and _index(store).covers == {manifest.run_id}
    assert _left(store, images(range(10))) == _uris(images(range(5, 10)))

    record_run(store, _commit(store, manifest, "00001"), plan, io.StringIO())
    _spoil(store, manifest.run_id)  # covered: the start reads the index alone
    assert _left(store, images(range(10))) == []


def test_a_run_that_never_closed_is_read_at_every_start_until_it_closes(store):
    killed, plan = history_run(store, images(range(10)), hour=0, shard_size=5, status="running", uncommitted={"00001"})

    assert _left(store, images(range(10))) == _uris(images(range(5, 10)))
    assert killed.run_id not in _index(store).covers and _index(store).answers.num_rows == 5

    closed = _commit(store, killed, "00001")  # a resumed attempt commits the rest, then is killed again
    assert _left(store, images(range(10))) == []

    record_run(store, closed, plan, io.StringIO())
    assert _index(store).covers == {killed.run_id}


def test_a_changed_file_is_not_answered(store):
    history_run(store, images(range(6)), hour=0)
    rewritten = images(range(2), edition=1)  # size and version changed
    same_size = images(range(2, 4)).table.set_column(4, "version", pa.array(['"other"', '"other2"']))
    same_version = images(range(4, 5)).table.set_column(1, "size", pa.array([1], pa.int64()))
    listed = pa.concat_tables([rewritten.table, same_size, same_version, images(range(5, 6)).table])

    assert _left(store, Listing(listed)) == _uris(images(range(5)))


def test_inputs_listed_without_size_or_version_are_matched_by_uri(store):
    unversioned = images(range(4)).table
    for column in ("size", "version"):
        index = unversioned.schema.get_field_index(column)
        unversioned = unversioned.set_column(index, column, pa.nulls(4, unversioned.schema.field(column).type))
    history_run(store, Listing(unversioned.slice(0, 2)), hour=0)

    assert _left(store, Listing(unversioned)) == _uris(images(range(2, 4)))


def test_runs_of_another_model_answer_nothing_and_are_read_once(store):
    other, _ = history_run(store, images(range(10)), hour=0, model_fingerprint="another-model000")

    assert _left(store, images(range(10))) == _uris(images(range(10)))
    assert _index(store).covers == {other.run_id} and _index(store).answers.num_rows == 0

    _spoil(store, other.run_id)
    assert _left(store, images(range(10))) == _uris(images(range(10)))
    assert not store.index_location("another-model000").fs.exists(store.index_location("another-model000").path)


def test_an_input_one_run_failed_and_another_committed_is_answered(store):
    """The answer of one run is not undone by another run's failure on the same input, before or after it."""
    history_run(store, images(range(10)), hour=0, shard_size=5, status="failed", uncommitted={"00001"})
    history_run(store, images(range(5, 10)), hour=1, shard_size=5)
    history_run(store, images(range(10, 15)), hour=2, shard_size=5)
    history_run(store, images(range(10, 15)), hour=3, shard_size=5, status="failed", uncommitted={"00000"})

    assert _left(store, images(range(20))) == _uris(images(range(15, 20)))


def test_a_video_is_answered_only_by_a_run_that_committed_every_range_of_it(store):
    video = images(range(1), kind="video")
    ranges = {_uris(video)[0]: [Segment(0, 100, 100, None), Segment(100, None, 100, None)]}
    half, _ = history_run(store, video, hour=0, shard_size=100, videos=ranges, uncommitted={"00001"})
    assert Plan.load(store.plan_location(half.run_id)).shard_sizes == {"00000": 1, "00001": 1}

    assert _left(store, video) == _uris(video)
    history_run(store, video, hour=1, shard_size=100, videos=ranges)
    assert _left(store, video) == []


def test_a_run_whose_manifest_was_deleted_answers_nothing(store):
    gone, _ = history_run(store, images(range(5)), hour=0)
    history_run(store, images(range(5, 10)), hour=1)
    assert _left(store, images(range(10))) == []

    store.manifest_location(gone.run_id).fs.rm(store.manifest_location(gone.run_id).path)
    assert _left(store, images(range(10))) == _uris(images(range(5)))
    assert gone.run_id not in _index(store).covers and _index(store).answers.num_rows == 5


def test_an_unreadable_index_is_rebuilt_from_the_runs(store):
    history_run(store, images(range(5)), hour=0)
    assert _left(store, images(range(10))) == _uris(images(range(5, 10)))
    store.index_location(MODEL_FINGERPRINT).write_bytes_atomic(b"not parquet")

    assert _left(store, images(range(10))) == _uris(images(range(5, 10)))
    assert _index(store).answers.num_rows == 5


def test_a_start_rewrites_the_index_only_when_it_changed(store):
    history_run(store, images(range(5)), hour=0)
    history_run(store, images(range(5, 10)), hour=1, shard_size=3, status="running", uncommitted={"00001"})
    _left(store, images(range(10)))
    path = store.index_location(MODEL_FINGERPRINT).path
    os.utime(path, ns=(1, 1))

    _left(store, images(range(10)))
    assert os.stat(path).st_mtime_ns == 1


def test_a_failed_update_at_close_is_reported_not_raised(store):
    manifest, plan = history_run(store, images(range(5)), hour=0)
    os.makedirs(store.index_location(MODEL_FINGERPRINT).path)  # a folder where the index goes
    closing = io.StringIO()

    record_run(store, manifest, plan, closing)
    assert "answered-inputs index not updated" in closing.getvalue()


def test_latest_with_reads_manifests_newest_first_until_one_matches(store):
    old, _ = history_run(store, images(range(5)), hour=0)
    newest_of_job, _ = history_run(store, images(range(5)), hour=1)
    other = history_run(store, images(range(5)), hour=2)[0].model_copy(update={"fingerprint": "another-job00000"})
    store.save(other)
    store.manifest_location(old.run_id).write_bytes_atomic(b"{not a manifest")

    found = store.latest_with(FINGERPRINT)
    assert found is not None and found.run_id == newest_of_job.run_id
    assert store.run_ids() == sorted([old.run_id, newest_of_job.run_id, other.run_id])


def test_on_s3_a_start_with_nothing_new_reads_the_index_and_lists_the_runs(s3_bucket: str, flaky_proxy: FlakyProxy):
    store = RunStore(location(f"s3://{s3_bucket}/out", s3_storage_options(flaky_proxy.url)))
    assert _left(store, images(range(5))) == _uris(images(range(5)))  # no run yet
    for hour in range(5):
        history_run(store, images(range(hour * 10, hour * 10 + 10)), hour=hour, shard_size=5)
    assert _left(store, images(range(55))) == _uris(images(range(50, 55)))

    before = flaky_proxy.requests
    assert _left(store, images(range(55))) == _uris(images(range(50, 55)))
    assert flaky_proxy.requests - before == 2, flaky_proxy.log[before:]  # the index, one listing of _runs/
