"""Hardware profiles of every node of a Ray cluster, each detected on the node itself.

`bolly-ray hardware --address ADDR` runs one small task pinned to each live node; the task
detects that node's CPU, memory and GPUs (torch or nvidia-smi there, not here) and returns
its profile and recommendation, next to what Ray itself believes the node offers. A node
whose task fails is reported with the error instead of stopping the others. A run on a
cluster asks the same of its GPU nodes, to fit `auto` settings to them (`gpu_nodes`).
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bolly_ray.core.fitting import Node
from bolly_ray.core.hardware import HardwareProfile, detect_profile
from bolly_ray.executors.ray_executor import connect

log = logging.getLogger(__name__)

TASK_TIMEOUT_S = 120.0


@ray.remote(num_cpus=0, max_retries=0)
def _profile_here() -> dict[str, Any]:
    return detect_profile().to_json()


@ray.remote(num_cpus=0, max_retries=0)
def _versions_here() -> dict[str, str]:
    return {"ray": ray.__version__, "python": platform.python_version(),
            "bolly-ray": importlib.metadata.version("bolly-ray")}


def on_every_node(task: Any) -> list[tuple[dict[str, Any], Any, str | None]]:
    """(node, result, error) for `task` run pinned to each live node of the connected
    cluster; a node whose task fails gets its error instead of stopping the others."""
    return on_nodes(task, [n for n in ray.nodes() if n.get("Alive")])


def on_nodes(task: Any, nodes: list[dict[str, Any]]
             ) -> list[tuple[dict[str, Any], Any, str | None]]:
    """(node, result, error) for `task` run pinned to each of `nodes` (from `ray.nodes()`)."""
    pending = {n["NodeID"]: task.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
    ).remote() for n in nodes}
    found: list[tuple[dict[str, Any], Any, str | None]] = []
    for node in nodes:
        try:
            found.append((node, ray.get(pending[node["NodeID"]], timeout=TASK_TIMEOUT_S), None))
        except Exception as err:  # one unreachable node must not hide the others
            found.append((node, None, f"{type(err).__name__}: {err}".splitlines()[0]))
    return found


def node_versions() -> list[tuple[dict[str, Any], Any, str | None]]:
    """Ray, Python and bolly-ray versions as each live node of the connected cluster has them."""
    return on_every_node(_versions_here)


def gpu_nodes() -> tuple[Node, ...]:
    """Each live node of the connected cluster that offers Ray a GPU, as it detects itself;
    a node that cannot be profiled is left out, with a warning."""
    offering = [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get("GPU", 0) > 0]
    found = []
    for node, profile, error in on_nodes(_profile_here, offering):
        address, gpus = node["NodeManagerAddress"], node["Resources"]["GPU"]
        if error is not None:
            log.warning("cannot profile GPU node %s, so settings left auto ignore it: %s",
                        address, error)
            continue
        found.append(Node(HardwareProfile.from_json(profile), address,
                          node.get("Labels") or {}, gpus))
        if not found[-1].profile.gpus:
            log.warning("Ray lists %g GPU on node %s, but no GPU is detected there (neither "
                        "PyTorch nor nvidia-smi sees one)", gpus, address)
    return tuple(found)


def cluster_profiles(address: str) -> list[dict[str, Any]]:
    """One entry per live node: node id and address, Ray's resources, and its profile."""
    started = connect(address)
    try:
        entries = []
        for node, profile, error in on_every_node(_profile_here):
            entry: dict[str, Any] = {
                "node_id": node["NodeID"], "node_ip": node["NodeManagerAddress"],
                "ray_resources": {k: v for k, v in node["Resources"].items()
                                  if k in ("CPU", "GPU", "memory")}}
            if error is None:
                entry["profile"] = profile
            else:
                entry["error"] = error
            entries.append(entry)
        return entries
    finally:
        if started:
            ray.shutdown()
