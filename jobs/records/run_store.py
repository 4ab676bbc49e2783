"""The ``_runs/`` folder of an output: run manifests, saved plans, the answered-inputs index of ``--incremental``,
and finding the run to resume."""

from __future__ import annotations

import posixpath
import secrets
from datetime import datetime, timezone
from typing import Any

from common.errors import UsageError
from common.retries import Deadline
from common.storage import Location, location
from jobs.records.lease_record import DEFAULT_WRITE_DEADLINE_S
from jobs.records.shard_markers import table_files
from schemas import layout
from schemas.choices import OverwriteScope
from schemas.manifest import RunManifest


def writable_output(uri: str, storage_options: dict[str, Any]) -> Location:
    """The output location, proven writable by writing and removing a probe file (``UsageError`` if not)."""
    out = location(uri, storage_options)
    probe = out.child(layout.write_probe(RunStore.new_run_id()))
    try:
        probe.write_bytes_atomic(b"")
        probe.fs.rm(probe.path)
    except (OSError, PermissionError) as exc:
        raise UsageError(f"cannot write to output {uri}: {exc.strerror or exc}") from None
    return out


class RunStore:
    """Reads and writes the run manifests, the saved plans and the answered-inputs index (``schemas.layout``)."""

    def __init__(self, out: Location, write_deadline_s: float = DEFAULT_WRITE_DEADLINE_S) -> None:
        """``write_deadline_s``: how long saving a manifest may take (``RunLease.write_deadline_s``), so that a
        run's manifest lands while its lease is held, or not at all."""
        self.out = out
        self.folder = out.child(layout.RUNS)
        self.write_deadline_s = write_deadline_s

    @staticmethod
    def new_run_id(now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    def manifest_location(self, run_id: str) -> Location:
        return self.out.child(layout.manifest(run_id))

    def plan_location(self, run_id: str) -> Location:
        return self.out.child(layout.plan(run_id))

    def index_location(self, model_fingerprint: str) -> Location:
        """The answered-inputs index of one model (``jobs.planning.answered_index``)."""
        return self.out.child(layout.answered_index(model_fingerprint))

    def save(self, manifest: RunManifest) -> None:
        data = manifest.model_dump_json(indent=2).encode()
        self.manifest_location(manifest.run_id).write_bytes_atomic(data, deadline=Deadline(self.write_deadline_s))

    def run_ids(self) -> list[str]:
        """Ids of the runs with a manifest, oldest first, from one listing of ``_runs/``: no manifest is read."""
        names = [posixpath.basename(path) for path in self._listed()]
        return sorted(filter(None, map(layout.parse_manifest, names)))

    def manifest(self, run_id: str) -> RunManifest:
        return RunManifest.model_validate_json(self.manifest_location(run_id).read_bytes())

    def manifests(self) -> list[RunManifest]:
        """All run manifests in this output, oldest first."""
        return [self.manifest(run_id) for run_id in self.run_ids()]

    def latest_with(self, fingerprint: str) -> RunManifest | None:
        """The newest run of the same job (same fingerprint): the one a rerun resumes. Manifests are read newest
        first until one matches, so a scheduled job reads one, not its whole history."""
        for run_id in reversed(self.run_ids()):
            manifest = self.manifest(run_id)
            if manifest.fingerprint == fingerprint:
                return manifest
        return None

    def clear(self, scope: OverwriteScope, model_fingerprint: str) -> list[str]:
        """``--overwrite``: remove the runs of one model (``model``: manifests, plans, markers, rows and its
        answered-inputs index), or everything the job owns under the output (``all``); the output's lease and its
        epoch records stay (epochs only grow per output: ``common.epochs``, which a writer that lost the output
        before the clear may still be judged by).
        Tracks go either way: they were made from detections being removed. Returns the ids of the runs removed.

        What names files goes before the files it names, so that a clear cut short leaves no record naming a file
        that is gone, only files no reader finds: the answered-inputs index first (it names inputs as answered),
        then the track markers, the manifests (no reader looks into a run without one), the shard markers, and the
        files last. Clearing again finishes the job: files of runs without a manifest go whatever the scope, as
        nothing can read or resume them."""
        manifests = self.manifests()
        runs = [m.run_id for m in manifests if scope == "all" or m.model_fingerprint == model_fingerprint]
        kept = {m.run_id for m in manifests} - set(runs)
        parts = [(path, layout.parse_part_file(path)) for path in table_files(self.out)]
        gone = sorted({*runs, *self._run_folders(), *(part[0] for _, part in parts if part)} - kept)
        index = layout.answered_index(model_fingerprint)
        doomed = [self.out.child(posixpath.dirname(index) if scope == "all" else index).path]
        doomed += [self.out.child(folder).path for folder in (layout.TRACK_MARKERS, *layout.TRACK_TABLES)]
        doomed += [self.manifest_location(run_id).path for run_id in runs]
        doomed += [self.out.child(layout.markers(run_id)).path for run_id in gone]
        if scope == "all":
            doomed += [self.out.child(table).path for table in layout.TABLES]
        else:
            doomed += [path for path, part in parts if part and part[0] in gone]
        doomed += [self.folder.child(run_id).path for run_id in gone]
        if scope == "all":
            kept_paths = {
                self.out.child(name).path
                for name in (layout.lease(), layout.lease_lock(), layout.lease_write_lock(), layout.EPOCHS)
            }
            doomed += [path for path in self._listed() if path.rstrip("/") not in kept_paths]
        fs = self.out.fs
        for path in doomed:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        return runs

    def _listed(self) -> dict[str, str]:
        """Path -> type (``file``, ``directory``) of everything directly in ``_runs/``, from a fresh listing."""
        fs = self.folder.fs
        fs.invalidate_cache(self.folder.path)
        try:
            return {entry["name"]: entry["type"] for entry in fs.ls(self.folder.path, detail=True)}
        except FileNotFoundError:  # no run yet
            return {}

    def _run_folders(self) -> list[str]:
        """Ids of the runs with a folder in ``_runs/`` (a plan, markers, staging), manifest or not."""
        names = [posixpath.basename(path.rstrip("/")) for path, kind in self._listed().items() if kind == "directory"]
        return [name for name in names if not name.startswith(("_", "."))]
