"""cluster.yaml and the KubeRay manifest, validated offline: Ray's own launcher validation
for the one, and for the other a translation to the same per-node resources."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parent.parent


def load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def start_flags(command: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+)=(\S+)", command))


def test_cluster_yaml_passes_rays_validation() -> None:
    config = load("cluster.yaml")
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["provider"]["type"] == "local"
    assert "ray stop" not in yaml.safe_dump(config)


def test_cluster_yaml_declares_a_cpu_head_and_gpu_workers() -> None:
    config = load("cluster.yaml")
    head = start_flags(" ".join(config["head_start_ray_commands"]))
    worker = start_flags(" ".join(config["worker_start_ray_commands"]))
    assert head["num-gpus"] == "0"
    assert "bolly-ray/media=true" in head["labels"]
    assert worker["labels"] == "bolly-ray/role=gpu"


@pytest.mark.parametrize("breakage, message", [
    ({"available_node_types": {"gpu": {"resources": {"GPU": 1}, "node_config": {}}}},
     "available_node_types"),
    ({"provider": {"type": "local"}}, "head_ip"),
    ({"idle_timeout_minutes": "soon"}, "soon"),
])
def test_a_broken_cluster_yaml_is_rejected(breakage: dict, message: str) -> None:
    config = load("cluster.yaml") | breakage
    with pytest.raises(Exception, match=message):
        validate_config(prepare_config(config))


def kuberay_groups(manifest: dict) -> dict[str, dict[str, float]]:
    """Each group's Ray resources, as KubeRay derives them from the pod and rayStartParams."""
    spec = manifest["spec"]
    groups = {"head": spec["headGroupSpec"]} | {g["groupName"]: g
                                                for g in spec["workerGroupSpecs"]}
    out = {}
    for name, group in groups.items():
        params = group["rayStartParams"]
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        out[name] = {"CPU": float(params.get("num-cpus", limits["cpu"])),
                     "GPU": float(params.get("num-gpus", limits.get("nvidia.com/gpu", 0))),
                     "pod_gpus": float(limits.get("nvidia.com/gpu", 0)),
                     "pod_cpus": float(limits["cpu"])}
    return out


def test_kuberay_manifest_matches_the_cluster_shape() -> None:
    manifest = load("deploy/kuberay-raycluster.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayCluster")
    assert manifest["spec"]["rayVersion"] == "2.60.0"
    groups = kuberay_groups(manifest)
    assert groups["head"]["GPU"] == 0
    assert groups["gpu"]["GPU"] == groups["gpu"]["pod_gpus"] == 1
    for resources in groups.values():
        assert resources["CPU"] <= resources["pod_cpus"]  # Ray never promises more than the pod
        assert all(float(v).is_integer() for v in resources.values())


def test_every_deployment_runs_the_node_images_images_build_makes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bolly_ray.ops.node_image import node_tag

    monkeypatch.delenv("BOLLY_RAY_IMAGE_PREFIX", raising=False)
    cpu, gpu = node_tag(), node_tag(gpu=True)
    launcher = load("cluster.yaml")["docker"]
    assert (launcher["head_image"], launcher["worker_image"]) == (cpu, gpu)
    spec = load("deploy/kuberay-raycluster.yaml")["spec"]
    images = [c["image"] for c in spec["headGroupSpec"]["template"]["spec"]["containers"]]
    images += [c["image"] for g in spec["workerGroupSpecs"]
               for c in g["template"]["spec"]["containers"]]
    assert images == [f"registry.example.org/{cpu}", f"registry.example.org/{gpu}"]
    compose = (REPO / "deploy" / "compose.yaml").read_text()
    assert f"${{BOLLY_RAY_IMAGE_PREFIX:-bolly-ray-}}{cpu.removeprefix('bolly-ray-')}\n" in compose
    assert f"{cpu.removeprefix('bolly-ray-')}${{BOLLY_RAY_GPU_VARIANT--gpu}}\n" in compose
