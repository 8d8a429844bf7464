"""Settings fitted to hardware: a job's `auto` settings resolved where its stages will run.

A job prepared on one machine may run on another (a CPU-only cluster head sends ASR to GPU
workers), so `auto` is resolved at run time, once per run, before any cache key is made:
the executor says which hardware will host each stage (this machine; on a cluster, the
weakest GPU node for a stage that takes a GPU, else the driver's node), the stage's
`fit_settings` turns its autos into values for that hardware, and the manifest records
what was chosen and why. The cache key, the model id and the actor pool all use the fitted
settings, so a cached output names the model that really made it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bolly_ray.core.hardware import HardwareProfile
from bolly_ray.spec import ComputeKind, GpuStageSettings, Stage, StageSettings

Chosen = dict[str, Any]
"""What a fit changed (`<stage>.<setting>`: value) and `why`; empty when it changed nothing."""


@dataclass(frozen=True)
class Node:
    """A cluster node that offers Ray a GPU, as it detected itself."""

    profile: HardwareProfile
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ray_gpus: float = 0.0


@dataclass(frozen=True)
class Host:
    """The hardware a stage is fitted to, and how the manifest names it."""

    profile: HardwareProfile
    where: str
    unseen_gpus: bool = False
    """Ray lists GPUs there that the node's own probe did not find (logical GPUs, or no
    PyTorch and no nvidia-smi in its image)."""


@dataclass(frozen=True)
class Hardware:
    """What a run's stages can be placed on: the driver's machine, the GPUs Ray offers,
    and, on a cluster, the nodes that offer them (None: everything runs on this machine)."""

    here: HardwareProfile
    gpus: float
    gpu_nodes: tuple[Node, ...] | None = None

    def host_for(self, stage: Stage[Any], settings: StageSettings) -> Host:
        name = stage.spec.name
        if self.gpu_nodes is None:
            return Host(self.here, "this machine")
        wants_gpu = (stage.spec.compute == ComputeKind.GPU
                     and stage.resources(settings, self.gpus).gpus > 0)
        if not wants_gpu:
            reason = f"{name} asks for no GPU" if self.gpus >= 1 else "the cluster has no GPU"
            return Host(self.here, f"{reason}; the driver's node")
        node = weakest(self.gpu_nodes, stage.spec.node_labels)
        if node is None:
            return Host(self.here, f"no GPU node of the cluster could be profiled for {name}; "
                                   "the driver's node")
        unseen = "" if node.profile.gpus else f", where Ray lists {node.ray_gpus:g} GPU"
        return Host(node.profile, f"{name} runs on the GPU nodes; the smallest is "
                                  f"{node.address}{unseen}", bool(unseen))


def weakest(nodes: tuple[Node, ...], labels: Mapping[str, str]) -> Node | None:
    """The node with the least GPU memory among those carrying `labels` (a pool's actors
    may land on any of them, so its model must fit the smallest); nodes whose GPUs were
    detected come first, since Ray alone says nothing of a GPU's memory."""
    matching = [n for n in nodes if all(n.labels.get(k) == v for k, v in labels.items())]
    if not matching:
        return None
    seen = [n for n in matching if n.profile.gpus] or matching
    return min(seen, key=lambda n: max((g.vram_mb for g in n.profile.gpus), default=0))


def fits_to_hardware(stage: Stage[Any]) -> bool:
    """Whether the stage fits its settings at all: asking a cluster's nodes costs a task on
    each GPU node, which runs of other stages need not pay."""
    return type(stage).fit_settings is not Stage.fit_settings


def fit(stage: Stage[Any], settings: StageSettings, host: Host) -> tuple[StageSettings, Chosen]:
    """The settings fitted to `host`, validated again, and what was chosen and why."""
    fitted = type(settings).model_validate(
        stage.fit_settings(settings, host.profile).model_dump())
    if host.unseen_gpus and isinstance(settings, GpuStageSettings) and settings.device == "auto":
        # the rest is fitted to what the node has; the device stays auto so the pool still
        # goes where the cluster declares GPUs, and the actor there picks its device at load
        fitted = fitted.model_copy(update={"device": "auto"})
    before, after = settings.model_dump(mode="json"), fitted.model_dump(mode="json")
    changed = {k: v for k, v in after.items() if before.get(k) != v}
    if not changed:
        return fitted, {}
    choices = ", ".join(f"{k}={v}" for k, v in changed.items())
    why = f"{host.where} ({host.profile.host}): {describe(host.profile)} → {choices}"
    return fitted, {**{f"{stage.spec.name}.{k}": v for k, v in changed.items()}, "why": why}


def describe(profile: HardwareProfile) -> str:
    """E.g. "2 CPUs, 24 GiB, no GPU" or "16 CPUs, 128 GiB, 1 x NVIDIA H200 (140 GiB)"."""
    gpus = Counter(f"{g.name} ({g.vram_mb / 1024:.0f} GiB)" for g in profile.gpus)
    cards = [f"{count} x {name}" for name, count in gpus.items()] or ["no GPU"]
    return ", ".join([f"{profile.cpus} CPUs", f"{profile.ram_mb / 1024:.0f} GiB", *cards])
