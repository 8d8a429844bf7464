"""Warm actor pools for GPU-kind stages: one pool per (stage, model), sized to the GPUs.

The demand is read from the jobs as they are admitted (how many jobs each pool serves,
what one actor reserves, whether some job surely needs the model); pools whose model will
surely be needed start at once, so models load while CPU stages work, and the others on
first use. Shares and sizes come from gpu_packing, recomputed whenever jobs are added:
a pool grows to its new size, and an actor whose reservation no longer fits the plan (its
share scaled down for a newly added pool) is retired, at once when idle or when its attempt
returns, and replaced at the new share. An attempt goes to the least busy actor that is
up, so no job waits on an actor that is still being placed. Pools ask Ray for GPUs only
(no CPUs: an actor holds its reservation for its whole life, and a CPU reservation would
starve the CPU tasks feeding it).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from bolly_ray.core.secrets import Secrets
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import JobSession
from bolly_ray.errors import PreflightError
from bolly_ray.executors.gpu_packing import Demand, PoolKey, pool_sizes, share_gpus
from bolly_ray.executors.ray_worker import StageActor
from bolly_ray.spec import ComputeKind

log = logging.getLogger(__name__)

# Ray restarts a pool actor whenever it dies, for the run's whole life: a node killed with its
# workers first is still listed alive for a while, and restarts placed there fail at once, so
# a bounded count was spent before the node was seen dead (the jobs' retries then met a dead
# actor). The attempts' own retry policy bounds what a job waits.
ACTOR_RESTARTS = -1


@dataclass
class Pool:
    """One model's actors: those taking work, and those retired but still running one."""

    gpus: float
    """What each new actor of the pool reserves."""
    actors: dict[int, Any] = field(default_factory=dict)
    ready: dict[int, Any] = field(default_factory=dict)
    busy: Counter[int] = field(default_factory=Counter)
    retiring: dict[int, Any] = field(default_factory=dict)
    next_id: int = 0

    def add(self, actor: Any) -> None:
        self.actors[self.next_id] = actor
        self.ready[self.next_id] = actor.__ray_ready__.remote()
        self.next_id += 1

    def pick(self) -> int:
        """The least busy actor among those up (among all while none is up yet)."""
        ids = list(self.actors)
        refs = [self.ready[i] for i in ids]
        up, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        candidates = [i for i, ref in zip(ids, refs, strict=True) if ref in up] or ids
        return min(candidates, key=lambda i: (self.busy[i], i))

    def retire(self, actor_ids: Iterable[int]) -> None:
        """Stop giving work to these actors; each is killed once its attempts returned."""
        for actor_id in list(actor_ids):
            self.retiring[actor_id] = self.actors.pop(actor_id)
            self.ready.pop(actor_id)
            self.release_retired(actor_id)

    def surplus(self, count: int) -> list[int]:
        """The `count` actors to retire when the pool shrinks: idle ones, the newest first."""
        return sorted(self.actors, key=lambda i: (self.busy[i], -i))[:count]

    def release_retired(self, actor_id: int) -> None:
        if actor_id in self.retiring and self.busy[actor_id] <= 0:
            ray.kill(self.retiring.pop(actor_id), no_restart=True)
            self.busy.pop(actor_id, None)

    def resize(self, size: int, gpus: float, new_actor: Callable[[], Any]) -> None:
        if gpus != self.gpus:  # its actors hold the old share: replaced, not resized
            self.retire(self.actors)
            self.gpus = gpus
        if len(self.actors) > size:
            self.retire(self.surplus(len(self.actors) - size))
        for _ in range(size - len(self.actors)):
            self.add(new_actor())

    def stop(self) -> None:
        for actor in [*self.actors.values(), *self.retiring.values()]:
            ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.retiring.clear()


class ActorPools:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.declared: dict[PoolKey, Demand] = {}
        """Each pool's demand with the resources its stage declares."""
        self.demand: dict[PoolKey, Demand] = {}
        """The same with the GPU shares the pools get."""
        self.pools: dict[PoolKey, Pool] = {}
        self.sizes: dict[PoolKey, int] = {}
        self._lock = threading.Lock()

    def add(self, sessions: list[JobSession], cluster: dict[str, float],
            gpu_nodes: Sequence[float]) -> set[PoolKey]:
        """Count what these jobs will ask of each pool (refusing a stage the cluster cannot
        host, before anything of theirs starts) and replan every pool; the pools added."""
        demand = gpu_demand(sessions, self.registry, cluster.get("GPU", 0.0))
        check_fits(demand, cluster)
        with self._lock:  # the scheduler's thread may be starting or picking from a pool
            added = set(demand) - set(self.declared)
            for key, need in demand.items():
                if key in self.declared:
                    earlier = self.declared[key]
                    need = replace(earlier, jobs=earlier.jobs + need.jobs,
                                   fresh=earlier.fresh or need.fresh)
                self.declared[key] = need
            self.demand = share_gpus(dict(self.declared), gpu_nodes)
            self.sizes = pool_sizes(self.demand, gpu_nodes, cluster.get("CPU", 1.0))
            for key in self.pools:
                self._resize(key)
        return added

    def start(self, key: PoolKey) -> None:
        with self._lock:
            if key not in self.pools:
                self.pools[key] = Pool(self.demand[key].resources.gpus)
                self._resize(key)

    def acquire(self, key: PoolKey) -> tuple[Any, int]:
        """An actor of the pool (started now if it is not), counted busy until released."""
        self.start(key)
        with self._lock:
            pool = self.pools[key]
            actor_id = pool.pick()
            pool.busy[actor_id] += 1
            return pool.actors[actor_id], actor_id

    def release(self, key: PoolKey, actor_id: int) -> None:
        with self._lock:
            pool = self.pools[key]
            if actor_id in pool.actors or actor_id in pool.retiring:
                pool.busy[actor_id] -= 1
                pool.release_retired(actor_id)

    def replace_lost(self, key: PoolKey, actor_id: int, why: str = "") -> None:
        """An actor died under an attempt: it gets no more work and a fresh actor takes its
        place. Ray restarts a dead actor only until its restarts are spent (a node whose
        workers were killed before it was seen dead spends them at once), and an attempt
        retried on a dead actor fails again at once."""
        with self._lock:
            pool = self.pools.get(key)
            if pool is None or actor_id not in pool.actors:
                return  # replaced already, on an earlier attempt's news
            log.warning("%s: an actor died; starting another (%s)", key[0], why)
            pool.retire([actor_id])
            self._resize(key)

    def stop(self) -> None:
        with self._lock:
            for pool in self.pools.values():
                pool.stop()
            self.pools.clear()

    def _resize(self, key: PoolKey) -> None:
        need, pool = self.demand[key], self.pools[key]
        before = len(pool.actors)
        pool.resize(self.sizes[key], need.resources.gpus, lambda: self._actor(key, need))
        if len(pool.actors) != before:
            log.info("%s: %d actor(s) with %g GPU each", key[0], len(pool.actors),
                     need.resources.gpus)

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
