"""The driver side of the job: command line, listing, planning, the Ray Data pipeline and the commits.

Ray's uv integration is turned off here, before any module of the package imports Ray (it reads the setting
once, at its import). With it on (Ray's default) and the driver run by ``uv run``, as the README's commands run
it, Ray starts every worker through ``uv run`` in a fresh copy of the working directory, which builds a virtual
environment of its own for every Ray session: several times the start-up of a run (docs/performance.md) and
gigabytes of hard links under ``/tmp/ray``. The job's workers need none of it: a local Ray's workers run in the
driver's environment, and a cluster's in the one its nodes were set up with (``cluster.yaml``), code shipped by
``ray job submit --working-dir``. A user who wants it back sets ``RAY_ENABLE_UV_RUN_RUNTIME_ENV=1``.
"""

import os

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
