"""Warm actor pools for GPU-kind stages: one pool per (stage, model), sized to the GPUs.

The demand is read from the jobs before anything starts (how many jobs each pool serves,
what one actor reserves, whether some job surely needs the model); pools whose model will
surely be needed start with the run, so models load while CPU stages work, and the others
on first use. An attempt goes to the pool's least busy actor. Pools ask Ray for GPUs only
(no CPUs: an actor holds its reservation for its whole life, and a CPU reservation would
starve the CPU tasks feeding it).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import ray

from bolly_ray.driver import JobSession
from bolly_ray.errors import PreflightError
from bolly_ray.executors.ray_worker import StageActor
from bolly_ray.registry import Registry
from bolly_ray.secrets import Secrets
from bolly_ray.spec import ComputeKind, Resources, StageSettings

log = logging.getLogger(__name__)

ACTOR_RESTARTS = 4

PoolKey = tuple[str, str | None]
"""(stage, model id): one actor pool per distinct model."""


@dataclass(frozen=True)
class Demand:
    """What one (stage, model) actor pool must serve in a run."""

    jobs: int
    resources: Resources
    settings: StageSettings
    fresh: bool
    """Some job has no output of this stage yet, so its model will surely be needed."""


@dataclass
class Pool:
    actors: list[Any]
    busy: Counter[int]

    def pick(self) -> int:
        return min(range(len(self.actors)), key=lambda i: self.busy[i])


class ActorPools:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.demand: dict[PoolKey, Demand] = {}
        self.pools: dict[PoolKey, Pool] = {}
        self.cluster: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, sessions: list[JobSession], cluster: dict[str, float]) -> set[PoolKey]:
        """Count what these jobs will ask of each pool (refusing a stage the cluster cannot
        host, before anything of theirs starts); the pools they add."""
        self.cluster = cluster
        gpus = cluster.get("GPU", 0.0)
        demand = gpu_demand(sessions, self.registry, gpus)
        check_fits(demand, cluster)
        with self._lock:  # the scheduler's thread may be starting a pool
            added = set(demand) - set(self.demand)
            for key, need in demand.items():
                if key in self.demand:
                    earlier = self.demand[key]
                    need = replace(earlier, jobs=earlier.jobs + need.jobs,
                                   fresh=earlier.fresh or need.fresh)
                self.demand[key] = need
            self.demand = share_gpus(self.demand, gpus)
            for key in set(demand) & set(self.pools):  # more jobs for a warm pool: grow it
                self._grow(key)
        return added

    def start(self, key: PoolKey) -> None:
        with self._lock:
            if key not in self.pools:
                self.pools[key] = self._new_pool(key, self.demand[key])

    def acquire(self, key: PoolKey) -> tuple[Any, int]:
        """An actor of the pool (started now if it is not), counted busy until released."""
        self.start(key)
        pool = self.pools[key]
        index = pool.pick()
        pool.busy[index] += 1
        return pool.actors[index], index

    def release(self, key: PoolKey, index: int) -> None:
        self.pools[key].busy[index] -= 1

    def stop(self) -> None:
        with self._lock:
            for pool in self.pools.values():
                for actor in pool.actors:
                    ray.kill(actor, no_restart=True)
            self.pools.clear()

    def _new_pool(self, key: PoolKey, need: Demand) -> Pool:
        size = pool_size(need.resources, need.jobs, self.cluster)
        log.info("%s: %d actor(s) with %g GPU each", key[0], size, need.resources.gpus)
        return Pool([self._actor(key, need) for _ in range(size)], Counter())

    def _grow(self, key: PoolKey) -> None:
        need, pool = self.demand[key], self.pools[key]
        more = pool_size(need.resources, need.jobs, self.cluster) - len(pool.actors)
        if more > 0:
            pool.actors += [self._actor(key, need) for _ in range(more)]
            log.info("%s: %d more actor(s) for the jobs that came", key[0], more)

    def _actor(self, key: PoolKey, need: Demand) -> Any:
        stage = self.registry[key[0]]
        options: dict[str, Any] = {"num_gpus": need.resources.gpus, "num_cpus": 0,
                                   "max_restarts": ACTOR_RESTARTS}
        if stage.spec.node_labels:
            options["label_selector"] = dict(stage.spec.node_labels)
        # ray.remote's stub types the decorated class as the class itself, without .options
        actor_class: Any = StageActor
        return actor_class.options(**options).remote(
            stage, need.settings, Secrets.from_env().only(stage.spec.secrets))


def gpu_demand(sessions: list[JobSession], registry: Registry, gpus: float
               ) -> dict[PoolKey, Demand]:
    """What each (stage, model) actor pool must serve in this run, GPU kind only."""
    demand: dict[PoolKey, Demand] = {}
    for session in sessions:
        before = session.dir.read_manifest(session.job.id).stages  # a peek, not the lock
        for name in session.selected:
            stage = registry[name]
            if stage.spec.compute != ComputeKind.GPU or session.skip_reason(name):
                continue
            settings = session.settings(name)
            key = (name, stage.model_id(settings))
            earlier = demand.get(key)
            fresh = name not in before or not before[name].status.has_outputs
            demand[key] = Demand((earlier.jobs if earlier else 0) + 1,
                                 stage.resources(settings, gpus), settings,
                                 fresh or bool(earlier and earlier.fresh))
    return demand


def check_fits(demand: dict[PoolKey, Demand], cluster: dict[str, float]) -> None:
    gpus = cluster.get("GPU", 0.0)
    problems = sorted({
        f"{stage} needs {need.resources.gpus:g} GPU; the cluster has {gpus:g}: start a GPU "
        f"node or set {stage}.device=cpu"
        for (stage, _), need in demand.items() if need.resources.gpus > gpus})
    if problems:
        raise PreflightError("\n".join(problems))


def share_gpus(demand: dict[PoolKey, Demand], gpus: float) -> dict[PoolKey, Demand]:
    """Every pool's first actor starts with the run (its model loads while CPU stages work)
    and holds its GPUs to the end: where one actor per pool asks for more GPUs than the
    cluster has (ASR's whole GPU and alignment's half on one card), each pool's share is
    scaled down in proportion, so the models share the devices instead of the last pool
    waiting forever for a GPU that never frees."""
    asked = sum(need.resources.gpus for need in demand.values())
    if asked <= gpus or asked == 0:
        return demand
    scale = gpus / asked
    for key, need in list(demand.items()):
        share = math.floor(need.resources.gpus * scale * 1e4) / 1e4  # Ray's precision
        demand[key] = replace(need, resources=replace(need.resources, gpus=share))
        log.info("%s: %g GPU per actor (its %g shared with the other GPU stages' pools)",
                 key[0], share, need.resources.gpus)
    return demand


def pool_size(resources: Resources, jobs: int, cluster: dict[str, float]) -> int:
    if resources.gpus > 0:
        fit = int(cluster.get("GPU", 0.0) // resources.gpus)
    else:
        fit = int(cluster.get("CPU", 1.0) // max(resources.cpus, 1.0))
    return max(1, min(jobs, fit))
