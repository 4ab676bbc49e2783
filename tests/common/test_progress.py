"""Progress lines as a log (Ray job logs, cron) shows them."""

from __future__ import annotations

import io
import time

from common.progress import Progress


def test_lines_give_rate_and_eta_once_measurable_and_say_done_at_the_end():
    progress = Progress(total=10, stream=io.StringIO(), every_s=3600)
    assert progress.line() == "progress: 0/10 frames (0.0%), ? frames/s, ETA ?, errors 0"
    progress.advance(4, 1)
    assert progress.line() == "progress: 4/10 frames (40.0%), ? frames/s, ETA ?, errors 1"
    time.sleep(0.05)
    progress.advance(4, 0)
    rate = progress.rate
    assert rate > 0
    line = progress.line()
    assert line.startswith("progress: 8/10 frames (80.0%), ") and line.endswith(" frames/s, ETA 0s, errors 1")
    progress.advance(2, 0)
    assert progress.line().endswith(", done, errors 1")


def test_a_log_gets_a_line_every_interval():
    stream = io.StringIO()
    progress = Progress(total=3, stream=stream, every_s=0.0)
    progress.advance(1, 0)
    progress.advance(2, 1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0] == "progress: 1/3 frames (33.3%), ? frames/s, ETA ?, errors 0"
    assert lines[1].startswith("progress: 3/3 frames (100.0%), ") and lines[1].endswith(", done, errors 1")
