"""``ShardMarkers.drop_unbacked``: after the output's lease was taken over, a marker whose part files are gone
(written by a stalled task of the run that lost the output, after this run cleaned up) is removed, so the shard
is done again rather than committed without rows."""

from __future__ import annotations

from pathlib import Path

from common.storage import location
from jobs.records.shard_markers import ShardMarkers
from tests.support.outputs import Frame, commit_run, run_id


def test_a_marker_whose_files_are_gone_is_dropped_and_the_others_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_id(1)
    frames = {shard: [Frame(f"{shard}.jpg", boxes=[("dog", 0.9, 1, 2, 3, 4)])] for shard in ("00000", "00001")}
    commit_run(out, run, frames)
    markers = ShardMarkers(location(str(out)), run)
    lost = markers.committed()["00001"].files[0]
    (out / lost).unlink()  # cleaned up by the run that took the output over

    assert markers.drop_unbacked() == {"00001"}
    assert markers.committed_ids() == {"00000"}
    assert markers.drop_unbacked() == set()
