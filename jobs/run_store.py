"""The ``_runs/`` folder of an output: run manifests, saved plans, and finding the run to resume."""

from __future__ import annotations

import posixpath
import secrets
from datetime import datetime, timezone

from jobs.storage import Location
from schemas.manifest import RunManifest


class RunStore:
    """Reads and writes ``OUT/_runs/<run_id>.json`` and ``OUT/_runs/<run_id>/``."""

    def __init__(self, out: Location) -> None:
        self.out = out
        self.folder = out.child("_runs")

    @staticmethod
    def new_run_id(now: datetime | None = None) -> str:
        now = now or datetime.now(timezone.utc)
        return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"

    def manifest_location(self, run_id: str) -> Location:
        return self.folder.child(f"{run_id}.json")

    def plan_location(self, run_id: str) -> Location:
        return self.folder.child(run_id, "plan.parquet")

    def save(self, manifest: RunManifest) -> None:
        self.manifest_location(manifest.run_id).write_bytes_atomic(manifest.model_dump_json(indent=2).encode())

    def manifests(self) -> list[RunManifest]:
        """All run manifests in this output, oldest first."""
        fs = self.folder.fs
        if not fs.exists(self.folder.path):
            return []
        paths = sorted(fs.glob(posixpath.join(self.folder.path, "*.json")))
        return [RunManifest.model_validate_json(Location(fs, p).read_bytes()) for p in paths]

    def latest_with(self, fingerprint: str) -> RunManifest | None:
        """The newest run of the same job (same fingerprint): the one a rerun resumes."""
        same = [m for m in self.manifests() if m.fingerprint == fingerprint]
        return same[-1] if same else None

    def clear(self) -> None:
        """``--overwrite``: remove everything the job owns under the output."""
        for name in ("frames", "detections", "_runs"):
            target = self.out.child(name)
            if target.fs.exists(target.path):
                target.fs.rm(target.path, recursive=True)
