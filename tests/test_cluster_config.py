"""cluster.yaml is checked by Ray's own cluster-launcher validator (what `ray up` runs before contacting AWS)."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster.yaml"


@pytest.fixture
def config() -> dict:
    return yaml.safe_load(CLUSTER.read_text())


def test_ray_validator_accepts_cluster_yaml(config):
    validate_config(prepare_config(copy.deepcopy(config)))


def test_ray_validator_rejects_a_broken_copy(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = "zero"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))
    unknown = copy.deepcopy(config)
    unknown["worker_count"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(unknown))


def test_head_is_cpu_and_gpu_workers_autoscale_from_zero(config):
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu = [t for t in types.values() if t["resources"].get("GPU", 0) >= 1]
    assert gpu and all(t["min_workers"] == 0 < t["max_workers"] for t in gpu)


def test_nodes_install_from_the_lock_and_run_ray_from_the_project(config):
    assert any("uv sync --frozen" in c for c in config["setup_commands"])
    assert config["file_mounts"]["~/yolonas-batch"] == "."
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("uv run --frozen" in c for c in starts)
