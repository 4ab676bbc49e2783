"""k8s/rayjob.yaml is checked against KubeRay's own RayJob CRD schema and the rules its operator enforces.

The schema is the `v1` openAPIV3Schema of KubeRay v1.7.0's `ray-operator/config/crd/bases/ray.io_rayjobs.yaml`,
vendored in k8s/kuberay/ (see its README). The rules below are those of KubeRay v1.7.0's
`ray-operator/controllers/ray/utils/validation.go` (the webhook/controller rejects a RayJob that breaks them).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from jobs.cli import detect_parser

ROOT = Path(__file__).resolve().parents[1]
RAYJOB = ROOT / "k8s" / "rayjob.yaml"
SCHEMA = ROOT / "k8s" / "kuberay" / "rayjob-v1-schema.json"
KUBERAY_VERSION = "v1.7.0"

# constant.go: MaxRayClusterNameLength = 53; MaxRayJobNameLength = MaxRayClusterNameLength - 6
MAX_RAYJOB_NAME_LENGTH = 47
# k8s.io/apimachinery validation.IsDNS1035Label, used by ValidateRayJobMetadata
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# validation.go ValidateRayClusterSpec: authOptions.mode "token" needs rayVersion >= 2.52.0
MIN_RAY_VERSION_FOR_TOKEN_AUTH = (2, 52, 0)


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SCHEMA.read_text())


@pytest.fixture
def rayjob() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


def _validator(schema: dict) -> jsonschema.protocols.Validator:
    # A CRD's structural schema is the OpenAPI v3 subset that Draft 4 covers (type, properties, items, enum,
    # required, anyOf, pattern, minimum...); `x-kubernetes-*` keys are unknown keywords and ignored.
    return jsonschema.Draft4Validator(schema)


def _unknown_fields(obj: Any, schema: dict, path: str = "") -> list[str]:
    """Fields the API server would reject under kubectl's default strict field validation (or prune)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(obj, dict) and "properties" in schema:
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            if key in schema["properties"]:
                found += _unknown_fields(value, schema["properties"][key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += _unknown_fields(value, extra, f"{path}.{key}")
            elif not extra:
                found.append(f"{path}.{key}")
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, value in obj.items():
            found += _unknown_fields(value, schema["additionalProperties"], f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(obj):
            found += _unknown_fields(value, schema["items"], f"{path}[{i}]")
    return found


def kuberay_errors(rayjob: dict) -> list[str]:
    """The subset of KubeRay v1.7.0's validation.go rules that a RayJob with a rayClusterSpec can break."""
    errors = []
    name = rayjob["metadata"]["name"]
    # ValidateRayJobMetadata
    if len(name) > MAX_RAYJOB_NAME_LENGTH:
        errors.append(f"name longer than {MAX_RAYJOB_NAME_LENGTH}")
    if not DNS1035_LABEL.fullmatch(name):
        errors.append("name is not a DNS-1035 label")
    spec = rayjob["spec"]
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    ttl = spec.get("ttlSecondsAfterFinished", 0)
    # ValidateRayJobSpec
    if ttl < 0:
        errors.append("ttlSecondsAfterFinished must be non-negative")
    # validateDeletionConfiguration (called by ValidateRayJobSpec)
    if not shutdown and ttl > 0:
        errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if spec.get("suspend") and not shutdown:
        errors.append("suspend needs shutdownAfterJobFinishes: true")
    if "rayClusterSpec" not in spec and not spec.get("clusterSelector"):
        errors.append("one of rayClusterSpec or clusterSelector must be set")
    if spec.get("submissionMode") == "InteractiveMode" and spec.get("backoffLimit", 0) > 0:
        errors.append("backoffLimit is incompatible with InteractiveMode")
    if spec.get("backoffLimit", 0) < 0:
        errors.append("backoffLimit must be non-negative")
    for key in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if key in spec and spec[key] <= 0:
            errors.append(f"{key} must be positive")
    if "runtimeEnvYAML" in spec:
        yaml.safe_load(spec["runtimeEnvYAML"])  # UnmarshalRuntimeEnvYAML: must be valid YAML
    cluster = spec.get("rayClusterSpec")
    if cluster is None:
        return errors
    # ValidateRayClusterSpec
    if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
        errors.append("K8s token auth is not supported for RayJob")
    if (cluster.get("authOptions") or {}).get("mode") == "token":
        version = tuple(int(p) for p in cluster.get("rayVersion", "0").split(".")[:3])
        if version < MIN_RAY_VERSION_FOR_TOKEN_AUTH:
            errors.append("authOptions.mode token needs rayVersion >= 2.52.0")
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster.get("workerGroupSpecs", [])]
    for group_name, group in groups:
        if not group["template"]["spec"].get("containers"):
            errors.append(f"{group_name}: at least one container")
        params = group.get("rayStartParams") or {}
        # validateRayGroupResources, validateRayGroupLabels
        if group.get("resources") and any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")):
            errors.append(f"{group_name}: resources in both rayStartParams and resources")
        if "labels" in params:
            errors.append(f"{group_name}: rayStartParams['labels'] is not supported")
    autoscaling = cluster.get("enableInTreeAutoscaling", False)
    for group in cluster.get("workerGroupSpecs", []):
        lo, hi = group.get("minReplicas"), group.get("maxReplicas")
        if not autoscaling and (lo is None or hi is None):
            errors.append(f"{group['groupName']}: minReplicas and maxReplicas are needed without autoscaling")
        if (lo is not None and lo < 0) or (hi is not None and hi < 0):
            errors.append(f"{group['groupName']}: negative replicas")
        if lo is not None and hi is not None and lo > hi:
            errors.append(f"{group['groupName']}: minReplicas > maxReplicas")
    return errors


def _pod_templates(rayjob: dict) -> list[dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"]]
    templates += [g["template"] for g in cluster["workerGroupSpecs"]]
    if "submitterPodTemplate" in rayjob["spec"]:
        templates.append(rayjob["spec"]["submitterPodTemplate"])
    return templates


def _gpu_workers(rayjob: dict) -> list[dict]:
    return [
        g
        for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
        if any(
            int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) >= 1
            for c in g["template"]["spec"]["containers"]
        )
    ]


def test_schema_is_kuberays_rayjob_v1_and_names_its_version(schema):
    assert set(schema["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "rayClusterSpec" in schema["properties"]["spec"]["properties"]
    assert KUBERAY_VERSION in (SCHEMA.parent / "README.md").read_text()


def test_rayjob_matches_kuberays_crd_schema(rayjob, schema):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    _validator(schema).validate(rayjob)
    assert _unknown_fields(rayjob, schema) == []


def test_rayjob_passes_kuberays_validation_rules(rayjob):
    assert kuberay_errors(rayjob) == []
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] >= 0
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode"


def test_broken_copies_are_rejected(rayjob, schema):
    wrong_type = copy.deepcopy(rayjob)
    wrong_type["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["minReplicas"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        _validator(schema).validate(wrong_type)
    typo = copy.deepcopy(rayjob)
    typo["spec"]["shutdownAfterJobFinish"] = typo["spec"].pop("shutdownAfterJobFinishes")
    assert _unknown_fields(typo, schema) == [".spec.shutdownAfterJobFinish"]
    assert "ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true" in kuberay_errors(typo)
    long_name = copy.deepcopy(rayjob)
    long_name["metadata"]["name"] = "y" * (MAX_RAYJOB_NAME_LENGTH + 1)
    assert kuberay_errors(long_name) == [f"name longer than {MAX_RAYJOB_NAME_LENGTH}"]
    negative_ttl = copy.deepcopy(rayjob)
    negative_ttl["spec"]["ttlSecondsAfterFinished"] = -1
    assert kuberay_errors(negative_ttl) == ["ttlSecondsAfterFinished must be non-negative"]


def test_a_gpu_worker_group_requests_nvidia_gpus(rayjob):
    gpu = _gpu_workers(rayjob)
    assert gpu
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert all("nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}) for c in head)


def test_entrypoint_is_a_valid_detect_command(rayjob):
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:3] == ["python", "-m", "jobs.detect"]
    args = detect_parser().parse_args(argv[3:])
    assert args.sources and args.output
    assert args.device == "cuda"  # the job may start before the workers' GPUs are visible to it
    gpus = sum(
        g["maxReplicas"] * int(c["resources"]["limits"]["nvidia.com/gpu"])
        for g in _gpu_workers(rayjob)
        for c in g["template"]["spec"]["containers"]
        if "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
    )
    assert args.workers is None or args.workers <= gpus * args.actors_per_gpu


def test_ray_version_is_the_locked_one(rayjob):
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    ray = next(p["version"] for p in lock["package"] if p["name"] == "ray")
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == ray


def test_credentials_come_from_the_service_account_not_the_spec(rayjob):
    for template in _pod_templates(rayjob):
        assert template["spec"].get("serviceAccountName") == "yolonas-batch"
        for container in template["spec"]["containers"] + template["spec"].get("initContainers", []):
            for env in container.get("env", []):
                if re.search(r"KEY|SECRET|TOKEN|PASSWORD", env["name"], re.IGNORECASE):
                    assert "value" not in env, f"{env['name']} has a literal value; use valueFrom.secretKeyRef"
