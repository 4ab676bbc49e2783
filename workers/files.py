"""Publishing a local file whole or not at all: the one implementation the output, the model cache and the
weights cache share."""

from __future__ import annotations

import os
import uuid


def write_atomic(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part of it.

    The bytes go to ``<path>.<random>.tmp`` in the same folder (same filesystem, so the rename is atomic), are
    flushed to disk (unless not ``durable``: a file whose loss in a power cut costs only a redo), then renamed
    over ``path``. A crash in between leaves at most that ``.tmp`` file, which the job's cleanup of a resumed run
    recognises by its suffix."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    partial = f"{target}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(partial, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
