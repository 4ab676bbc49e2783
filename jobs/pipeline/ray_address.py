"""Which Ray a run joins, known before Ray is imported: the run's lease records whether it is a local one of the
run's own (``jobs.records.lease_holder``), which ends with the run's process."""

from __future__ import annotations

import os


def owns_local_ray(address: str | None) -> bool:
    """Whether a run given ``address`` (``--ray-address``) starts a local Ray of its own: neither it nor
    ``RAY_ADDRESS`` names a cluster to join (``ray job submit`` sets ``RAY_ADDRESS`` for the job)."""
    return not address and not os.environ.get("RAY_ADDRESS")
