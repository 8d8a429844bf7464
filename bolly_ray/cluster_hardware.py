"""Hardware profiles of every node of a Ray cluster, each detected on the node itself.

`bolly-ray hardware --address ADDR` runs one small task pinned to each live node; the task
detects that node's CPU, memory and GPUs (torch or nvidia-smi there, not here) and returns
its profile and recommendation, next to what Ray itself believes the node offers. A node
whose task fails is reported with the error instead of stopping the others.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bolly_ray.executors.ray_executor import connect
from bolly_ray.hardware import detect_profile

TASK_TIMEOUT_S = 120.0


@ray.remote(num_cpus=0, max_retries=0)
def _profile_here() -> dict[str, Any]:
    return detect_profile().to_json()


def cluster_profiles(address: str) -> list[dict[str, Any]]:
    """One entry per live node: node id and address, Ray's resources, and its profile."""
    started = connect(address)
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        pending = {n["NodeID"]: _profile_here.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote() for n in nodes}
        entries = []
        for node in nodes:
            entry: dict[str, Any] = {
                "node_id": node["NodeID"], "node_ip": node["NodeManagerAddress"],
                "ray_resources": {k: v for k, v in node["Resources"].items()
                                  if k in ("CPU", "GPU", "memory")}}
            try:
                entry["profile"] = ray.get(pending[node["NodeID"]], timeout=TASK_TIMEOUT_S)
            except Exception as err:  # one unreachable node must not hide the others
                entry["error"] = f"{type(err).__name__}: {err}".splitlines()[0]
            entries.append(entry)
        return entries
    finally:
        if started:
            ray.shutdown()
