"""A poison input for the job's tests: an image that kills the model actor's process whenever the model runs it,
as a native crash (a segfault in a kernel) or the kernel's out-of-memory killer would.

Tests put ``CrashingDetectStage`` in place of ``jobs.pipeline.DetectStage`` (``monkeypatch.setattr``) on the
driver; Ray pickles the class by reference, so the model actors import it from here. The poison is known by its
pixels (a flat ``POISON_LEVEL`` grey, which no photo is), so the crash happens inside the model call itself, on
whichever batch or single frame holds it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from jobs.pipeline.detect_stage import DetectStage
from workers.detector import Detections
from workers.frames import FrameBatch

POISON_LEVEL = 13


def write_poison(path: Path) -> Path:
    """A PNG that kills the model process of ``CrashingDetectStage``."""
    cv2.imwrite(str(path), np.full((96, 128, 3), POISON_LEVEL, np.uint8))
    return path


class _Crashing:
    """A detector that kills its own process, at once and without clean-up, when a batch holds the poison."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector

    def detect(self, batch: FrameBatch) -> Detections:
        centres = batch.images[:, batch.images.shape[1] // 2, batch.images.shape[2] // 2]
        if (centres == POISON_LEVEL).all(axis=-1).any():
            os.kill(os.getpid(), signal.SIGKILL)
        return self.detector.detect(batch)


class CrashingDetectStage(DetectStage):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.detector = _Crashing(self.detector)
