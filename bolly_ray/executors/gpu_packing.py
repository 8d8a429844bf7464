"""How the GPU actor pools share the cluster's GPUs: shares and pool sizes, packed per GPU.

Ray places a fractional GPU request on one GPU of one node and a request of one or more GPUs
on whole GPUs of one node, and an actor holds its reservation for its whole life. So the
plan packs reservations the way Ray will: every pool's first actor must fit beside the
others' (each scaled down together until they do), and more actors are added, one per pool
in turn, only while they fit beside all of those. A plan that Ray cannot place would leave
an actor waiting forever for a GPU its neighbours never free.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bolly_ray.spec import Resources, StageSettings

log = logging.getLogger(__name__)

PoolKey = tuple[str, str | None]
"""(stage, model id): one actor pool per distinct model."""

GPU_PRECISION = 1e-4  # Ray rounds fractional resources to four decimals
SCALE_STEP = 0.95


@dataclass(frozen=True)
class Demand:
    """What one (stage, model) actor pool must serve in a run."""

    jobs: int
    resources: Resources
    settings: StageSettings
    fresh: bool
    """Some job has no output of this stage yet, so its model will surely be needed."""


class GpuBudget:
    """The free part of each GPU of each node, as reservations are taken from it."""

    def __init__(self, gpu_nodes: Sequence[float]) -> None:
        self.free = [[1.0] * int(gpus) + ([gpus % 1] if gpus % 1 else []) for gpus in gpu_nodes]

    def take(self, gpus: float) -> bool:
        """Reserve `gpus` where Ray would put it; False (nothing taken) where it cannot go."""
        if gpus <= 0:
            return True
        if gpus < 1:
            return self._take_part(gpus)
        return self._take_whole(math.ceil(gpus - GPU_PRECISION))

    def _take_part(self, gpus: float) -> bool:
        for node in self.free:
            for index, left in enumerate(node):
                if left + GPU_PRECISION >= gpus:
                    node[index] = left - gpus
                    return True
        return False

    def _take_whole(self, count: int) -> bool:
        for node in self.free:
            empty = [i for i, left in enumerate(node) if left + GPU_PRECISION >= 1.0]
            if len(empty) >= count:
                for index in empty[:count]:
                    node[index] = 0.0
                return True
        return False


def packing_order(demand: Mapping[PoolKey, Demand]) -> list[PoolKey]:
    """Largest reservation first (first-fit decreasing), ties by name: a stable order."""
    return sorted(demand, key=lambda key: (-demand[key].resources.gpus, key[0], key[1] or ""))


def firsts_fit(demand: Mapping[PoolKey, Demand], gpu_nodes: Sequence[float]) -> bool:
    budget = GpuBudget(gpu_nodes)
    return all(budget.take(demand[key].resources.gpus) for key in packing_order(demand))


def share_gpus(demand: dict[PoolKey, Demand], gpu_nodes: Sequence[float]
               ) -> dict[PoolKey, Demand]:
    """Every pool's first actor starts with the run (its model loads while CPU stages work)
    and holds its GPUs to the end: where one actor per pool does not fit the GPUs as
    declared (ASR's whole GPU and alignment's half on one card), every pool's share is
    scaled down together until they all fit, so the models share the devices instead of
    the last pool waiting forever for a GPU that never frees."""
    if firsts_fit(demand, gpu_nodes) or not any(gpu_nodes):
        return demand
    asked = sum(need.resources.gpus for need in demand.values())
    scale = min(1.0, sum(gpu_nodes) / asked)
    while True:
        scaled = {key: _scaled(need, scale) for key, need in demand.items()}
        if firsts_fit(scaled, gpu_nodes) or scale < GPU_PRECISION:
            break
        scale *= SCALE_STEP
    for key, need in scaled.items():
        log.info("%s: %g GPU per actor (its %g shared with the other GPU stages' pools)",
                 key[0], need.resources.gpus, demand[key].resources.gpus)
    return scaled


def _scaled(need: Demand, scale: float) -> Demand:
    share = math.floor(need.resources.gpus * scale / GPU_PRECISION) * GPU_PRECISION
    return replace(need, resources=replace(need.resources, gpus=round(share, 4)))


def pool_sizes(demand: Mapping[PoolKey, Demand], gpu_nodes: Sequence[float],
               cpus: float) -> dict[PoolKey, int]:
    """Actors per pool: one each, then one more per pool in turn while a pool has more jobs
    than actors and the actor fits beside all the others. Pools that reserve no GPU (a
    GPU-kind stage set to run on the CPU) get one actor per CPU, up to their jobs."""
    budget = GpuBudget(gpu_nodes)
    order = packing_order(demand)
    sizes = {key: 1 for key in order}
    for key in order:
        budget.take(demand[key].resources.gpus)
    growing = [key for key in order if demand[key].resources.gpus > 0]
    while growing:
        growing = [key for key in growing if sizes[key] < demand[key].jobs
                   and budget.take(demand[key].resources.gpus)]
        for key in growing:
            sizes[key] += 1
    for key in order:
        need = demand[key]
        if need.resources.gpus <= 0:
            sizes[key] = max(1, min(need.jobs, int(cpus // max(need.resources.cpus, 1.0))))
    return sizes
