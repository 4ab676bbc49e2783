"""Which Ray a run joins, known before Ray starts: the run's lease records whether it is a local one of the run's
own (``jobs.records.lease_holder``), which ends with the run's process."""

from __future__ import annotations

import os
import sys


def owns_local_ray(address: str | None) -> bool:
    """Whether a run given ``address`` (``--ray-address``) starts a local Ray of its own: neither it nor
    ``RAY_ADDRESS`` names a cluster to join (``ray job submit`` sets ``RAY_ADDRESS`` for the job), and this process
    has not joined one already (then the run uses that Ray, whatever it is)."""
    ray = sys.modules.get("ray")
    return not address and not os.environ.get("RAY_ADDRESS") and not (ray is not None and ray.is_initialized())
