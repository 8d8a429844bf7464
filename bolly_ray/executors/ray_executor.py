"""The Ray executor: GPU-kind stages in warm actor pools, CPU stages as tasks.

In docker mode a stage's attempts are tasks that run its container: CPU stages with
`--cpu-stages docker`, GPU stages with `--gpu-stages docker` (a task holding the GPUs the
stage asks for, which its container is given).

With no address it starts an embedded Ray on this machine (loopback only, GPUs from the
hardware probe); with one it joins a running cluster. Placement follows what stages declare,
never their names: a pool of actors per (stage, model) sized to the GPUs, CPU tasks spread
over the nodes, stages that read the source media pinned to the driver's node unless the
media sits on a path every node shares. Artifacts travel through the object store, so no
shared filesystem is needed. Before any actor starts, every stage must serialise and every
GPU stage must fit the cluster. Lost workers, nodes and actors are transient failures:
the attempt is retried (a restarted actor reloads its model), recorded in the manifest.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bolly_ray.driver import AttemptOutcome, AttemptPlan, JobSession
from bolly_ray.errors import PreflightError, WorkerLostError
from bolly_ray.events import Observers
from bolly_ray.executors.base import Executor, Finished, selected_of_kind
from bolly_ray.executors.ray_worker import StageActor, WorkerResult, reap_node, task_attempt
from bolly_ray.fitting import Hardware
from bolly_ray.hardware import detect_gpus, profile_here
from bolly_ray.ray_auth import probe, use_token_if_found
from bolly_ray.registry import Registry
from bolly_ray.report import RAY_TIMELINE
from bolly_ray.secrets import Secrets, withheld_from_children
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    ComputeKind,
    Locality,
    Resources,
    Stage,
    StageSettings,
)
from bolly_ray.store import write_atomic
from bolly_ray.transfer import pack, unpack

log = logging.getLogger(__name__)

MIB = 1024 * 1024
ACTOR_RESTARTS = 4
LOST = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
        ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError,
        ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError)


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
class _Pool:
    actors: list[Any]
    busy: Counter[int]

    def pick(self) -> int:
        return min(range(len(self.actors)), key=lambda i: self.busy[i])


class RayExecutor(Executor):
    def __init__(self, registry: Registry, observers: Observers | None = None,
                 address: str | None = None, cpu_stages: str = "native",
                 gpu_stages: str = "native",
                 worker_env: dict[str, str] | None = None) -> None:
        super().__init__(registry, observers, cpu_stages, gpu_stages)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.worker_env = dict(worker_env or {})
        self._embedded = False
        self._cluster: dict[str, float] = {}
        self._pools: dict[PoolKey, _Pool] = {}
        self._demand: dict[PoolKey, Demand] = {}
        self._inflight: dict[Hashable, tuple[Path, PoolKey, int]] = {}
        self._puts: dict[tuple[str, int, int], ray.ObjectRef] = {}

    # -- backend lifecycle ----------------------------------------------------------------

    def _hardware(self, sessions: list[JobSession]) -> Hardware:
        """This machine for an embedded Ray; on a cluster, also each GPU node's profile,
        detected on the node itself (one small task per GPU node)."""
        if not self.address and not ray.is_initialized():
            return super()._hardware(sessions)
        self._embedded = connect(self.address, self.worker_env) or self._embedded
        # imported here: cluster_hardware imports this module's connect
        from bolly_ray.cluster_hardware import gpu_nodes

        here = profile_here(sessions[0].job.out_root)
        return Hardware(here, ray.cluster_resources().get("GPU", 0.0), gpu_nodes())

    def _start(self, sessions: list[JobSession]) -> None:
        self._embedded = connect(self.address, self.worker_env) or self._embedded
        self._driver_node = ray.get_runtime_context().get_node_id()
        self._jobs = {s.job.id: s for s in sessions}
        self._cluster = ray.cluster_resources()  # read once: each read asks the GCS
        self._demand = self._gpu_demand(sessions)
        check_fits(self._demand, self._cluster)
        self._demand = share_gpus(self._demand, self._cluster.get("GPU", 0.0))
        cpu = selected_of_kind(sessions, self.registry, ComputeKind.CPU)
        check_serialisable({stage for stage, _ in self._demand} | cpu, self.registry)
        for key, need in self._demand.items():
            # models load while the CPU stages run; reruns load on demand
            if need.fresh and not self._runtime(key[0]):
                self._pools[key] = self._new_pool(key, need)

    def _gpus_available(self) -> float:
        return float(self._cluster.get("GPU", 0.0))

    def _save_trace(self, sessions: list[JobSession]) -> None:
        state_log = logging.getLogger("ray._private.state")  # warns of a future change each call
        level = state_log.level
        state_log.setLevel(logging.ERROR)
        try:
            events = json.dumps(ray.timeline())  # the whole run's: asked for once
        except Exception as err:  # a diagnostic: never worth failing a finished job over
            log.debug("no Ray timeline: %s", err)
            return
        finally:
            state_log.setLevel(level)
        for session in sessions:
            write_atomic(session.dir.logs / RAY_TIMELINE, events)

    def _stop(self) -> None:
        for pool in self._pools.values():
            for actor in pool.actors:
                ray.kill(actor, no_restart=True)
        self._pools.clear()
        self._puts.clear()
        if self._embedded:
            ray.shutdown()
            self._embedded = False

    # -- submission -------------------------------------------------------------------------

    def _submit(self, plan: AttemptPlan, scratch: Path) -> Hashable:
        stage = self.registry[plan.stage]
        shipped = self._ship(plan)
        if plan.spec.compute == ComputeKind.GPU and not self._runtime(plan.stage):
            key = (plan.stage, stage.model_id(plan.settings))
            if key not in self._pools:
                self._pools[key] = self._new_pool(key, self._demand[key])
            pool = self._pools[key]
            index = pool.pick()
            pool.busy[index] += 1
            ref = pool.actors[index].run.remote(plan, shipped)
            self._inflight[ref] = (scratch, key, index)
        else:
            containers = self.containers if self._runtime(plan.stage) else None
            ref = task_attempt.options(**self._task_options(stage, plan)).remote(
                stage, plan, shipped, containers)
            self._inflight[ref] = (scratch, ("", None), -1)
        return ref

    def _runner(self, plan: AttemptPlan) -> str:
        if self._runtime(plan.stage):
            return "docker"
        return "actor" if plan.spec.compute == ComputeKind.GPU else "task"

    def _collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]:
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait([h for h in handles if h not in ready],
                               num_returns=len(handles) - len(ready), timeout=0)
            ready += more
        return [(ref, self._result(ref)) for ref in ready]

    def _result(self, ref: ray.ObjectRef) -> AttemptOutcome | BaseException:
        scratch, key, index = self._inflight.pop(ref)
        if index >= 0:
            self._pools[key].busy[index] -= 1
        try:
            result: WorkerResult = ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause
            return cause if isinstance(cause, Exception) else RuntimeError(str(err))
        except LOST as err:
            return WorkerLostError(f"lost its worker ({type(err).__name__})")
        outputs = {name: unpack(packed, scratch).name for name, packed in result.outputs.items()}
        return AttemptOutcome(scratch, outputs, result.metrics, result.runner, result.node_id,
                              result.node_ip, result.image)

    def _reap(self, job_folder: str) -> int:
        """Every node's Docker engine may hold containers of a crashed run: ask them all."""
        nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
        refs = [reap_node.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node, soft=False)).remote({job_folder}) for node in nodes]
        return sum(ray.get(refs))

    def _ship(self, plan: AttemptPlan) -> dict[str, Any]:
        """Inputs for a remote attempt: the media by path, everything else packed, once."""
        shipped: dict[str, Any] = {}
        for name, path in plan.inputs.items():
            if name == SOURCE_ARTIFACT:
                shipped[name] = str(path)
                continue
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if key not in self._puts:
                self._puts[key] = ray.put(pack(path))
            shipped[name] = self._puts[key]
        return shipped

    def _new_pool(self, key: PoolKey, need: Demand) -> _Pool:
        stage = self.registry[key[0]]
        size = pool_size(need.resources, need.jobs, self._cluster)
        # Actors hold what they reserve for their whole life: a CPU reservation would starve
        # the CPU tasks feeding them (two such actors on a 2-CPU node and nothing else runs).
        options: dict[str, Any] = {"num_gpus": need.resources.gpus, "num_cpus": 0,
                                   "max_restarts": ACTOR_RESTARTS}
        if stage.spec.node_labels:
            options["label_selector"] = dict(stage.spec.node_labels)
        secrets = Secrets.from_env().only(stage.spec.secrets)
        actors = [StageActor.options(**options).remote(stage, need.settings, secrets)
                  for _ in range(size)]
        log.info("%s: %d actor(s) with %g GPU each", key[0], size, need.resources.gpus)
        return _Pool(actors, Counter())

    def _task_options(self, stage: Stage, plan: AttemptPlan) -> dict[str, Any]:
        resources = plan.resources
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus,
                                   "memory": resources.memory_mb * MIB,
                                   "scheduling_strategy": "SPREAD"}
        options.update(self._placement(stage, plan))
        return options

    def _placement(self, stage: Stage, plan: AttemptPlan) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if stage.spec.node_labels:
            options["label_selector"] = dict(stage.spec.node_labels)
        reads_media = SOURCE_ARTIFACT in plan.inputs or stage.spec.locality == Locality.SOURCE
        if reads_media and not self._on_shared_path(plan):
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                self._driver_node, soft=False)
        return options

    def _on_shared_path(self, plan: AttemptPlan) -> bool:
        job = self._jobs[plan.job_id].job
        return any(job.media.is_relative_to(p) for p in job.execution.shared_paths)

    # -- preflight helpers ---------------------------------------------------------------

    def _gpu_demand(self, sessions: list[JobSession]) -> dict[PoolKey, Demand]:
        """What each (stage, model) actor pool must serve in this run, GPU kind only."""
        demand: dict[PoolKey, Demand] = {}
        gpus = self._cluster.get("GPU", 0.0)
        for session in sessions:
            before = session.dir.read_manifest(session.job.id).stages  # a peek, not the lock
            for name in session.selected:
                stage = self.registry[name]
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


def connect(address: str | None, worker_env: dict[str, str] | None = None) -> bool:
    """Join `address`, or start an embedded Ray; True when we started it. `worker_env`
    reaches every worker of this driver, on every node."""
    if ray.is_initialized():
        return False
    level = max(logging.WARNING, logging.getLogger().level)  # -q raises it to errors only
    quiet: dict[str, Any] = {"logging_level": level, "log_to_driver": False}
    if worker_env:
        quiet["runtime_env"] = {"env_vars": dict(worker_env)}
    if address:
        use_token_if_found()
        probe(address)
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise PreflightError(f"cannot join the Ray cluster at {address}: {err}") from None
        return False
    # Ray 2.60 resolves a loopback node address to the machine's own address, so an
    # embedded Ray is reachable from the network; its token auth (on by default) guards it.
    with withheld_from_children():  # workers get only what their stage declares
        ray.init(address="local", include_dashboard=False, num_gpus=detect_gpus(), **quiet)
    return True


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


def check_serialisable(stages: set[str], registry: Registry) -> None:
    problems = []
    for name in sorted(stages):
        try:
            ray.cloudpickle.dumps(registry[name])
        except Exception as err:  # any pickling failure is the stage author's to fix
            problems.append(f"{name}: the stage cannot be sent to a worker: {err}")
    if problems:
        raise PreflightError("\n".join(problems))


def pool_size(resources: Resources, jobs: int, cluster: dict[str, float]) -> int:
    if resources.gpus > 0:
        fit = int(cluster.get("GPU", 0.0) // resources.gpus)
    else:
        fit = int(cluster.get("CPU", 1.0) // max(resources.cpus, 1.0))
    return max(1, min(jobs, fit))
