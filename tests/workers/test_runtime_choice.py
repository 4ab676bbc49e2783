"""``--runtime auto`` on a CPU: the faster forward pass is measured once, then read from the cache."""

from __future__ import annotations

import torch

from workers.runtime_choice import RUNTIMES, fastest_runtime


def _forwards(slow: str) -> dict[str, torch.nn.Module]:
    """Two real forward passes over the model's input, ``slow`` doing many times the work of the other."""
    light = torch.nn.Conv2d(3, 4, 3)
    heavy = torch.nn.Sequential(*(torch.nn.Conv2d(3, 3, 7, padding=3) for _ in range(8)))
    return {runtime: heavy if runtime == slow else light for runtime in RUNTIMES}


def test_the_faster_runtime_is_measured_once_and_then_read_from_the_cache(tmp_path):
    for slow, fast in (("torch", "onnxruntime"), ("onnxruntime", "torch")):
        forwards = _forwards(slow)
        loaded: list[str] = []

        def load(runtime, forwards=forwards, loaded=loaded):
            loaded.append(runtime)
            return forwards[runtime]

        cache = tmp_path / slow
        measured = fastest_runtime("yolo_nas_s", (64, 64), 1, 2, load, cache)
        assert (measured.runtime, measured.cached, sorted(loaded)) == (fast, False, sorted(RUNTIMES))
        assert measured.frames_per_s[fast] > measured.frames_per_s[slow] > 0
        again = fastest_runtime("yolo_nas_s", (64, 64), 1, 2, load, cache)
        assert (again.runtime, again.cached, again.frames_per_s) == (fast, True, measured.frames_per_s)
        assert len(loaded) == 2, "a cached choice loads no model"
        other = fastest_runtime("yolo_nas_s", (64, 64), 2, 2, load, cache)  # another thread count: measured again
        assert not other.cached and len(loaded) == 4
        assert "measured now" in measured.line(1) and "measured earlier" in again.line(1)
