"""``tables.superseded``: every row an older run wrote for a re-detected frame, and none other, in one filter that
pyiceberg evaluates in time however many frames it names."""

from __future__ import annotations

from common.storage import Location
from tables.publish import publish
from tables.superseded import superseded
from tests.support.outputs import Frame, commit_run, random_run, run_id
from tests.support.two_runs import DATA
from tests.tables.conftest import exported, table_rows

PHOTOS = 2500
VIDEOS = 1100
"""More than Python's recursion limit: a chained ``Or`` of one term per video would overflow it."""


def test_a_rerun_of_many_photos_supersedes_each_one(out: Location, catalog) -> None:
    random_run(out, run_id(1), PHOTOS, boxes_per_frame=1, shard_size=PHOTOS, width=64, height=48)
    publish(out, catalog, "many")
    random_run(out, run_id(2), PHOTOS, boxes_per_frame=1, shard_size=PHOTOS, width=64, height=48, seed=1)
    again = publish(out, catalog, "many")
    frames, boxes = table_rows(catalog, "many")
    assert again.deleted["frames"] == PHOTOS
    assert {row[0] for row in frames} == {run_id(2)}
    assert (frames, boxes) == exported(out)


def test_videos_whose_superseded_frames_all_differ(out: Location, catalog) -> None:
    """Each video but the first has another frame superseded (one term each); frame 0 of each stays run 1's."""
    videos = [f"{DATA}/clips/{i:05d}.mp4" for i in range(VIDEOS)]
    frames = [Frame(v, index=index) for i, v in enumerate(videos) for index in (0, i + 1)]
    commit_run(out, run_id(1), {"00000": frames})
    commit_run(out, run_id(2), {"00000": [Frame(v, index=i + 1) for i, v in enumerate(videos) if i]})
    done = publish(out, catalog, "many")
    assert done.deleted["frames"] == VIDEOS - 1
    assert table_rows(catalog, "many") == exported(out)


def test_only_the_files_whose_inputs_overlap_are_read(out: Location, catalog) -> None:
    """A rerun of one shard's 250 photos (more than the 200 values a set's file check takes) names the table's one
    file that holds them, both for the lookup and for the delete."""
    photos = [f"{DATA}/photos/{i:05d}.jpg" for i in range(750)]
    commit_run(out, run_id(1), {f"{n:05d}": [Frame(p) for p in photos[n * 250 : (n + 1) * 250]] for n in range(3)})
    publish(out, catalog, "many")
    commit_run(out, run_id(2), {"00000": [Frame(p) for p in photos[250:500]]})
    frames = catalog.load_table("many.frames")
    added = [path for path in out.fs.find(out.child("frames").path) if run_id(2) in path]
    stale = superseded(frames, out, added)
    assert stale is not None
    assert [task.file.file_path.rsplit("-", 2)[-2:] for task in frames.scan(row_filter=stale).plan_files()] == [
        ["aaaaaa", "00001.parquet"]
    ]
    assert publish(out, catalog, "many").deleted["frames"] == 250
    assert table_rows(catalog, "many") == exported(out)
