"""The ``_runs/`` folder of an output: run manifests, saved plans, the answered-inputs index of ``--incremental``,
and finding the run to resume."""

from __future__ import annotations

import posixpath
import secrets
from datetime import datetime, timezone

from common.storage import Location
from jobs.records.shard_markers import table_files
from schemas import layout
from schemas.choices import OverwriteScope
from schemas.manifest import RunManifest


class RunStore:
    """Reads and writes the run manifests, the saved plans and the answered-inputs index (``schemas.layout``)."""

    def __init__(self, out: Location) -> None:
        self.out = out
        self.folder = out.child(layout.RUNS)

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
        self.manifest_location(manifest.run_id).write_bytes_atomic(manifest.model_dump_json(indent=2).encode())

    def run_ids(self) -> list[str]:
        """Ids of the runs with a manifest, oldest first, from one listing of ``_runs/``: no manifest is read."""
        fs = self.folder.fs
        fs.invalidate_cache(self.folder.path)
        try:
            names = [posixpath.basename(path) for path in fs.ls(self.folder.path, detail=False)]
        except FileNotFoundError:  # no run yet
            return []
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
        answered-inputs index), or everything the job owns under the output (``all``); the output's lease stays.
        Tracks go either way: they were made from detections being removed. Returns the ids of the runs removed."""
        runs = [m.run_id for m in self.manifests() if scope == "all" or m.model_fingerprint == model_fingerprint]
        fs = self.out.fs
        if scope == "all":
            kept = {self.out.child(layout.lease()).path, self.out.child(layout.lease_lock()).path}
            doomed = [self.out.child(table).path for table in layout.TABLES]
            if fs.exists(self.folder.path):
                doomed += [p for p in fs.ls(self.folder.path, detail=False) if p not in kept]
        else:
            doomed = [self.manifest_location(run_id).path for run_id in runs]
            doomed += [self.folder.child(run_id).path for run_id in runs]
            doomed += [p for p in table_files(self.out) if (layout.parse_part_file(p) or ("",))[0] in runs]
            doomed.append(self.index_location(model_fingerprint).path)
        doomed += [self.out.child(folder).path for folder in (*layout.TRACK_TABLES, layout.TRACK_MARKERS)]
        for path in doomed:
            if fs.exists(path):
                fs.rm(path, recursive=True)
        return runs
