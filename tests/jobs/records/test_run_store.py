"""``--overwrite`` (``RunStore.clear``) on an output holding runs of two models, the output's lease and the user's
own files: ``model`` removes exactly this model's runs and rows, ``all`` every run's; the lease, its epoch records
and the user's files stay either way. One killed part-way leaves no record naming a file that is gone, and a second
one finishes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fsspec import AbstractFileSystem

from common.storage import location
from jobs.records.run_store import RunStore
from schemas import layout
from schemas.manifest import RunManifest, ShardCommit, TrackCommit
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.tracked_outputs import moving, track_all, video_frames

OTHER_MODEL = "other-model-fp00"
VIDEO = "file:///data/clip.mp4"


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
    for name in (layout.lease(), layout.lease_lock(), layout.epoch_record(1), "notes.txt"):
        (out / name).parent.mkdir(exist_ok=True)
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
    assert layout.manifest(theirs) in left and layout.marker(theirs, "00001", 0) in left
    assert layout.answered_index(OTHER_MODEL) in left and layout.answered_index(model) not in left
    assert {layout.lease(), layout.lease_lock(), layout.epoch_record(1), "notes.txt"} <= left
    assert store.run_ids() == [theirs]


def test_overwrite_all_removes_every_run_and_keeps_the_lease_and_the_users_files(output):
    out, store, model, mine, theirs = output
    assert store.clear("all", model) == sorted([*mine.split(), theirs])
    assert _files(out) == {layout.lease(), layout.lease_lock(), layout.epoch_record(1), "notes.txt"}


class Interrupted(Exception):
    """The process was killed here."""


@pytest.fixture
def tracked(output):
    """The output, with a video of this model's run tracked: track markers name its frames' part files."""
    out = output[0]
    commit_run(out, run_id(4), {"00000": video_frames(VIDEO, [0, 1, 2], moving("person", [0.9] * 3, (100, 100)))})
    assert track_all(location(str(out)))
    return out, output[2]


def _cut_after(fs: AbstractFileSystem, monkeypatch: pytest.MonkeyPatch, deletions: int) -> None:
    """Deletions through ``fs`` fail after the first ``deletions`` files: a clear killed part-way, a folder
    removed file by file as on an object store."""
    left = [deletions]
    rm, rm_file = fs.rm, fs.rm_file

    def remove(path: str) -> None:
        if left[0] <= 0:
            raise Interrupted(path)
        left[0] -= 1
        rm_file(path)

    def remove_all(path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        for each in path if isinstance(path, list) else [path]:
            for file in sorted(fs.find(each)) if fs.isdir(each) else [each]:
                remove(file)
            if fs.exists(each):  # a folder, its files gone
                rm(each, recursive=True)

    monkeypatch.setattr(fs, "rm_file", remove)
    monkeypatch.setattr(fs, "rm", remove_all)


def _dangling(out: Path) -> list[str]:
    """What a record left in ``out`` names that is gone: a shard marker's part files, a track marker's files and
    the frames it read, a manifest's plan."""
    named = [
        f
        for path in out.glob("_runs/*/shards/*.json")
        for f in ShardCommit.model_validate_json(path.read_bytes()).files
    ]
    for path in out.glob(layout.track_marker("*")):
        commit = TrackCommit.model_validate_json(path.read_bytes())
        named += [*commit.files, *commit.inputs]
    manifests = [path for path in out.glob(layout.manifest("*")) if layout.parse_manifest(path.name)]
    named += [RunManifest.model_validate_json(path.read_bytes()).plan.plan_file for path in manifests]
    return [f for f in named if not (out / f).exists()]


@pytest.mark.parametrize("scope", ["model", "all"])
def test_an_overwrite_cut_short_leaves_no_record_of_a_file_gone_and_a_second_one_finishes(
    tracked, tmp_path, scope, monkeypatch
):
    """Killed after each deletion in turn: no marker or manifest left names a file that is gone, the
    answered-inputs index goes before anything else, and clearing again leaves what one clear leaves."""
    out, model = tracked
    pristine = _files(out)
    reference = tmp_path / "reference"
    shutil.copytree(out, reference)
    RunStore(location(str(reference))).clear(scope, model)
    fs = location(str(out)).fs
    cut = 0
    while True:
        copy = tmp_path / f"cut-{cut}"
        shutil.copytree(out, copy)
        store = RunStore(location(str(copy)))
        with monkeypatch.context() as patched:
            _cut_after(fs, patched, cut)
            try:
                store.clear(scope, model)
                break
            except Interrupted:
                pass
        assert _dangling(copy) == [], f"cut after {cut} deletions"
        assert _files(copy) == pristine or not (copy / layout.answered_index(model)).exists()
        store.clear(scope, model)
        assert _files(copy) == _files(reference), f"cleared again after a cut after {cut} deletions"
        cut += 1
    assert cut > 10 and _files(copy) == _files(reference)
