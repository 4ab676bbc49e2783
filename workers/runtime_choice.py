"""Which runtime runs the fp32 model fastest on this CPU: measured, once per CPU, model and thread count.

Which of torch and ONNX Runtime is faster depends on the CPU: their fp32 kernels gain from AVX-512 by different
amounts, and a new release of either changes it again. So ``--runtime auto`` times a few warm batches of each on
the machine that decides (the driver) at the actors' thread count, and keeps the answer in the model cache under
a key of everything the answer depends on: the CPU's model and instruction sets, the model and its input size,
the threads, and both runtimes' versions. The weights' values are not part of it (speed does not depend on them).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import onnxruntime
import torch

from schemas.choices import Runtime
from workers.files import write_atomic

MEASURE_RUNS = 2
"""Timed batches per runtime, after one warm-up: seconds on a CPU, spent once per cache entry."""
RUNTIMES: tuple[Runtime, ...] = ("onnxruntime", "torch")
_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
"""The instruction sets the runtimes' fp32 and bf16 kernels choose by."""


@dataclass(frozen=True)
class Measured:
    runtime: Runtime
    """The faster one."""
    frames_per_s: dict[str, float]
    cached: bool
    """Read from the cache (measured by an earlier run on this kind of CPU), not measured now."""

    def line(self, threads: int) -> str:
        rates = ", ".join(f"{name} {rate:.2f}" for name, rate in sorted(self.frames_per_s.items()))
        when = "measured earlier on this CPU" if self.cached else "measured now, once for this CPU"
        return f"runtime: {self.runtime}, the faster at fp32 here ({rates} frames/s at {threads} threads; {when})"


def cpu_flags() -> set[str]:
    """This CPU's instruction sets among those that matter here (empty where ``/proc/cpuinfo`` is not)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    words = set(text.split())
    return {flag for flag in _FLAGS if flag in words}


def native_bf16() -> bool:
    """Whether this CPU computes bf16 itself (AVX512-BF16 or AMX), where ``--precision bf16`` pays."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def fastest_runtime(
    model_name: str,
    canvas: tuple[int, int],
    threads: int,
    batch: int,
    load: Callable[[Runtime], Callable[[torch.Tensor], object]],
    cache_dir: Path,
) -> Measured:
    """The runtime that runs ``model_name`` fastest here in batches of ``batch`` at ``threads`` threads (as the
    actors will): from the cache, else timed now (``load`` gives each runtime's forward pass) and stored."""
    path = cache_dir / "runtimes" / f"{model_name}-{_key(model_name, canvas, threads, batch)}.json"
    try:
        cached = json.loads(path.read_text())
        if sorted(cached) == sorted(RUNTIMES):
            return Measured(_faster(cached), cached, cached=True)
    except (OSError, ValueError):
        pass
    rates: dict[str, float] = {runtime: _rate(load(runtime), canvas, threads, batch) for runtime in RUNTIMES}
    try:
        write_atomic(path, json.dumps(rates).encode())
    except OSError:  # a read-only cache costs the next run a measurement, never this one its choice
        pass
    return Measured(_faster(rates), rates, cached=False)


def _faster(rates: dict[str, float]) -> Runtime:
    return max(RUNTIMES, key=lambda runtime: rates[runtime])


def _key(model_name: str, canvas: tuple[int, int], threads: int, batch: int) -> str:
    cpu = cpu_model_name()
    parts = [model_name, canvas, threads, batch, cpu, sorted(cpu_flags()), torch.__version__, onnxruntime.__version__]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def cpu_model_name() -> str:
    """The CPU's model as the kernel names it; ``unknown`` where ``/proc/cpuinfo`` is not."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _rate(forward: Callable[[torch.Tensor], object], canvas: tuple[int, int], threads: int, batch: int) -> float:
    """Frames/s of ``forward`` on random batches, warm, at ``threads`` torch threads (ONNX Runtime's own count is
    set by ``load``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = torch.rand(batch, 3, *canvas, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            forward(inputs)
            started = time.perf_counter()
            for _ in range(MEASURE_RUNS):
                forward(inputs)
        return batch * MEASURE_RUNS / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
