"""jobs/pipeline/resources.py: the layout a run gets follows the cluster it finds and the knobs it is given."""

from __future__ import annotations

import pytest

from common.errors import UsageError
from jobs.pipeline import resources
from schemas.config import JobConfig


@pytest.mark.parametrize(
    "asked, precision, device, runs",
    [
        ("auto", "fp32", "cpu", "onnxruntime"),
        ("auto", "bf16", "cpu", "torch"),
        ("auto", "fp32", "cuda", "torch"),
        ("torch", "fp32", "cpu", "torch"),
        ("onnxruntime", "fp32", "cpu", "onnxruntime"),
    ],
)
def test_runtime_follows_device_and_precision(asked, precision, device, runs):
    config = JobConfig(sources=["x"], output="out", runtime=asked, precision=precision)
    assert resources.runtime_for(config, device) == runs


def test_onnxruntime_where_it_cannot_run_is_a_usage_error():
    with pytest.raises(UsageError, match="fp32 on CPUs only"):
        resources.runtime_for(JobConfig(sources=["x"], output="out", runtime="onnxruntime", precision="bf16"), "cpu")


@pytest.mark.parametrize(
    "options, gpus, workers, batch_size, writers",
    [
        ({}, 0, 1, 8, 4),  # at least four write tasks, however few the actors
        ({}, 2, 4, 64, 8),  # two actors share each GPU by default; two write tasks per actor
        ({"actors_per_gpu": 1}, 2, 2, 64, 4),
        ({"actors_per_gpu": 3, "batch_size": 16}, 1, 3, 16, 6),
        ({"workers": 5}, 2, 5, 64, 10),
    ],
)
def test_resources_follow_the_cluster_and_the_knobs(monkeypatch, options, gpus, workers, batch_size, writers):
    """The layout the pipeline gets: a real GPU cluster cannot run here, so its GPU count is given."""
    monkeypatch.setattr(resources, "cluster_gpus", lambda: gpus)
    monkeypatch.setattr(resources, "cluster_cpus", lambda: 16)
    config = JobConfig(sources=["x"], output="out", decode_workers=6, **options)
    layout = resources.plan_resources(config)
    assert (layout.device, layout.workers, layout.batch_size) == (
        "cuda" if gpus else "cpu",
        workers,
        batch_size,
    )
    assert layout.decode_workers == 6 and layout.actors_per_gpu == config.actors_per_gpu
    assert layout.write_workers == writers
    chosen = resources.plan_resources(config.model_copy(update={"write_workers": 3}))
    assert chosen.write_workers == 3 and chosen.layout().write_workers == 3


def test_cpu_actors_always_leave_a_cpu_to_decode(monkeypatch):
    """With every CPU held by a model actor no frame would ever be decoded: the pipeline would wait forever (as
    after losing a node whose CPUs the layout counted). GPU actors are left as asked."""
    monkeypatch.setattr(resources, "cluster_gpus", lambda: 0)
    cpus = {"n": 2}
    monkeypatch.setattr(resources, "cluster_cpus", lambda: cpus["n"])
    config = JobConfig(sources=["x"], output="out", workers=2)
    assert resources.plan_resources(config).workers == 1
    cpus["n"] = 8
    planned = resources.plan_resources(config)
    assert planned.workers == 2
    cpus["n"] = 1  # a node lost between pipeline runs
    assert resources.fit_to_cluster(planned).workers == 1
    gpu = resources.Resources(
        device="cuda", workers=4, batch_size=64, torch_threads=1, actors_per_gpu=2, decode_workers=None
    )
    assert resources.fit_to_cluster(gpu) is gpu
