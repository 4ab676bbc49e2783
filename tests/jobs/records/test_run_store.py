"""``--overwrite`` (``RunStore.clear``) on an output holding runs of two models, the output's lease and the user's
own files: ``model`` removes exactly this model's runs and rows, ``all`` every run's; the lease and the user's
files stay either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.storage import location
from jobs.records.run_store import RunStore
from schemas import layout
from tests.support.outputs import Frame, commit_run, run_id

OTHER_MODEL = "other-model-fp00"


@pytest.fixture
def output(tmp_path: Path) -> tuple[Path, RunStore, str, str, str]:
    """An output with two runs of one model and one of another, each with its answered-inputs index."""
    out = tmp_path / "out"
    store = RunStore(location(str(out)))
    frames = {"00000": [Frame("a.jpg")], "00001": [Frame("b.jpg")]}
    mine = [commit_run(out, run_id(day), frames) for day in (1, 2)]
    theirs = commit_run(out, run_id(3), frames)
    store.save(theirs.model_copy(update={"model_fingerprint": OTHER_MODEL}))
    model = mine[0].model_fingerprint
    for fingerprint in (model, OTHER_MODEL):
        store.index_location(fingerprint).write_bytes_atomic(b"index")
    for name in (layout.lease(), layout.lease_lock(), "notes.txt"):
        (out / name).write_bytes(b"kept")
    return out, store, model, mine[0].run_id + " " + mine[1].run_id, theirs.run_id


def _files(out: Path) -> set[str]:
    return {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}


def test_overwrite_removes_this_models_runs_and_rows_only(output):
    out, store, model, mine, theirs = output
    removed = store.clear("model", model)
    assert removed == sorted(mine.split())
    left = _files(out)
    assert not [f for f in left if any(run in f for run in mine.split())]
    assert {run for f in left if (run := (layout.parse_part_file(f) or (None,))[0])} == {theirs}
    assert layout.manifest(theirs) in left and layout.marker(theirs, "00001") in left
    assert layout.answered_index(OTHER_MODEL) in left and layout.answered_index(model) not in left
    assert {layout.lease(), layout.lease_lock(), "notes.txt"} <= left
    assert store.run_ids() == [theirs]


def test_overwrite_all_removes_every_run_and_keeps_the_lease_and_the_users_files(output):
    out, store, model, mine, theirs = output
    assert store.clear("all", model) == sorted([*mine.split(), theirs])
    assert _files(out) == {layout.lease(), layout.lease_lock(), "notes.txt"}
