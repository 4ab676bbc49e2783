"""Live progress on the driver: one bar on a terminal, plain periodic lines in logs (Ray job logs, cron)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Frames done of total, frames/s, ETA and errors; a tqdm bar on a TTY, else a line every ``every_s``."""

    def __init__(self, total: int, *, stream: TextIO | None = None, every_s: float = 10.0, done: int = 0) -> None:
        self.stream = stream or sys.stdout
        self.total = total
        self.done = done
        self.errors = 0
        self.every_s = every_s
        self.started = time.monotonic()
        self._counted = 0
        self._first: tuple[float, int] | None = None
        """(time, frames) of the first result: the rate excludes start-up (Ray, model loading)."""
        self._last_line = self.started
        self._last_progress = self.started
        self._bar = (
            tqdm(total=total, initial=done, unit="frame", file=self.stream, dynamic_ncols=True, smoothing=0.1)
            if self.stream.isatty()
            else None
        )
        if self._bar is not None:
            self._bar.set_postfix_str("errors=0")

    def advance(self, frames: int, errors: int) -> None:
        self._last_progress = time.monotonic()
        if self._first is None:
            self._first = (time.monotonic(), frames)
        self.done += frames
        self._counted += frames
        self.errors += errors
        if self._bar is not None:
            self._bar.update(frames)
            self._bar.set_postfix_str(f"errors={self.errors}", refresh=False)
            return
        now = time.monotonic()
        if now - self._last_line >= self.every_s:
            self._last_line = now
            print(self.line(), file=self.stream, flush=True)

    def touch(self) -> None:
        """Count now as progress though no frame finished (a shard committed, a pipeline run starting)."""
        self._last_progress = time.monotonic()

    @property
    def idle_s(self) -> float:
        """Seconds since the last progress."""
        return time.monotonic() - self._last_progress

    def note(self, text: str) -> None:
        """The progress line with ``text`` after it, now: what a log reader needs while nothing finishes."""
        line = f"{self.line()}; {text}"
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        self._last_line = time.monotonic()

    @property
    def first_result_at(self) -> float | None:
        """``time.monotonic()`` when the first result arrived: the end of start-up (Ray, actors, model)."""
        return self._first[0] if self._first else None

    @property
    def rate(self) -> float:
        """Frames per second since the first result arrived (steady state, start-up excluded)."""
        if self._first is None:
            return 0.0
        elapsed = time.monotonic() - self._first[0]
        frames = self._counted - self._first[1]
        return frames / elapsed if elapsed > 0 and frames > 0 else 0.0

    def line(self) -> str:
        """One log line. Before a rate can be measured (results so far came at once) it says so, not 0 frames/s."""
        rate = self.rate
        speed = f"{rate:.2f}" if rate > 0 else "?"
        if self.done >= self.total:
            eta = "done"
        else:
            eta = f"ETA {(self.total - self.done) / rate:.0f}s" if rate > 0 else "ETA ?"
        return (
            f"progress: {self.done}/{self.total} frames ({100 * self.done / max(self.total, 1):.1f}%), "
            f"{speed} frames/s, {eta}, errors {self.errors}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
