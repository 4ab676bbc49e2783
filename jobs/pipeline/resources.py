"""How a run is laid out on the cluster it finds: device, model actors, batch size, runtime, threads.

Decided once per attempt, after Ray is up (a cluster may have GPUs the driver's machine lacks), from the
config's explicit choices and the defaults in ``schemas.choices``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable

import torch

from common.errors import UsageError
from jobs.pipeline.ray_session import cluster_cpus, cluster_gpus
from jobs.planning.model_setup import ModelSetup
from schemas.choices import DEFAULT_BATCH_SIZE, Runtime
from schemas.config import JobConfig
from schemas.manifest import Layout
from workers.detector import load_torchscript
from workers.onnx_runtime import OnnxForward
from workers.runtime_choice import RUNTIMES, Measured, fastest_runtime
from workers.trace_cache import default_cache_dir, traced_model

WRITES_PER_ACTOR = 2
MIN_WRITE_WORKERS = 4


@dataclass(frozen=True)
class Resources:
    """How the pipeline is laid out on the cluster."""

    device: str
    workers: int
    batch_size: int
    torch_threads: int
    actors_per_gpu: int
    decode_workers: int | None
    """Decode tasks at once at most; None: as many as free CPUs allow."""
    write_workers: int = MIN_WRITE_WORKERS
    runtime: Runtime = "torch"
    decode_batch_size: int = 8
    block_rows: int = 32

    def layout(self) -> Layout:
        """What the run manifest records of it, per attempt."""
        return Layout(
            device=self.device,
            batch_size=self.batch_size,
            workers=self.workers,
            runtime=self.runtime,
            write_workers=self.write_workers,
        )


def plan_resources(config: JobConfig) -> Resources:
    """The layout for ``config`` on the cluster Ray is connected to; ``UsageError`` if it asks the impossible."""
    gpus = cluster_gpus()
    device = config.device or ("cuda" if gpus else "cpu")
    if device == "cuda" and not gpus and not (config.ray_address or os.environ.get("RAY_ADDRESS")):
        # A cluster may bring GPU nodes on demand (autoscaling); a local Ray never will.
        raise UsageError("--device cuda was asked for but this machine has no GPU")
    workers = config.workers or (gpus * config.actors_per_gpu if device == "cuda" else 1)
    planned = Resources(
        device=device,
        workers=workers,
        batch_size=config.batch_size or DEFAULT_BATCH_SIZE[device],
        torch_threads=max(1, cluster_cpus() // workers),
        runtime=runtime_for(config, device),
        actors_per_gpu=config.actors_per_gpu,
        decode_workers=config.decode_workers,
        write_workers=config.write_workers or write_workers_for(workers),
    )
    return fit_to_cluster(planned)


def fit_to_cluster(resources: Resources) -> Resources:
    """``resources`` with no more CPU model actors than the cluster has now room for beside one decode task.

    Each CPU model actor holds a CPU for its whole life and decoding needs one more: with every CPU held by
    actors the pipeline would wait forever (Ray keeps waiting for an autoscaler to add CPUs). Checked again before
    each pipeline run, since a lost node takes its CPUs with it. GPU actors are left as asked: a cluster may bring
    GPU nodes on demand."""
    if resources.device == "cuda":
        return resources
    workers = max(1, min(resources.workers, cluster_cpus() - 1))
    return resources if workers == resources.workers else replace(resources, workers=workers)


def write_workers_for(model_workers: int) -> int:
    """Write tasks at once by default: a staged block costs a PUT (tens of ms on an object store) where a model
    actor answers a batch in about as long, so two writers per actor keep up; at least a few, for small runs."""
    return max(MIN_WRITE_WORKERS, WRITES_PER_ACTOR * model_workers)


def runtime_for(config: JobConfig, device: str) -> Runtime:
    """``--runtime`` on ``device``: auto takes ONNX Runtime where it runs (fp32 on a CPU: the same boxes, faster
    on every CPU measured so far, as ``benchmarks/onnx_runtime.py`` measures), torch elsewhere; on a CPU at fp32
    the driver then measures both (``choose_cpu_runtime``)."""
    fits = device == "cpu" and config.precision == "fp32"
    if config.runtime == "onnxruntime" and not fits:
        raise UsageError(f"--runtime onnxruntime runs fp32 on CPUs only, not {config.precision} on {device}")
    if config.runtime == "auto":
        return "onnxruntime" if fits else "torch"
    return config.runtime


def cpu_models(config: JobConfig, setup: ModelSetup) -> dict[Runtime, bytes]:
    """The fused models CPU actors may load for ``config`` (ONNX for ONNX Runtime, else TorchScript): the one
    ``--runtime`` names, or both for ``auto`` at fp32, to measure; from the model cache when it holds them, else
    made and stored there."""
    runtimes = RUNTIMES if _measured(config) else (runtime_for(config, "cpu"),)
    return {
        runtime: traced_model(config.model, setup.weights, setup.spec, setup.precision, runtime) for runtime in runtimes
    }


def choose_cpu_runtime(
    config: JobConfig, setup: ModelSetup, models: dict[Runtime, bytes], resources: Resources
) -> tuple[Runtime, Measured | None]:
    """The runtime CPU actors use: ``--runtime``'s, or for ``auto`` at fp32 the faster of the two on this CPU at the
    actors' threads and batch size (``workers.runtime_choice``), with its measurement."""
    threads = resources.torch_threads
    if not _measured(config):
        return runtime_for(config, "cpu"), None

    def load(runtime: Runtime) -> Callable[[torch.Tensor], object]:
        data = models[runtime]
        return OnnxForward(data, threads) if runtime == "onnxruntime" else load_torchscript(data, "cpu")

    canvas, batch = setup.spec.canvas, resources.batch_size
    measured = fastest_runtime(config.model, canvas, threads, batch, load, default_cache_dir())
    return measured.runtime, measured


def _measured(config: JobConfig) -> bool:
    return config.runtime == "auto" and config.precision == "fp32"
