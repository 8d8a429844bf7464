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

import logging
import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import ray
import ray.exceptions
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bolly_ray.core.fitting import Hardware
from bolly_ray.core.hardware import detect_gpus, profile_here
from bolly_ray.core.job import RunnerKind
from bolly_ray.core.secrets import withheld_from_children
from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.engine.events import Observers
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import JobSession
from bolly_ray.errors import PreflightError, WorkerLostError
from bolly_ray.executors.actor_pools import ActorPools
from bolly_ray.executors.base import Executor, Finished
from bolly_ray.executors.gpu_packing import PoolKey
from bolly_ray.executors.preflight import selected_of_kind
from bolly_ray.executors.ray_auth import probe, use_token_if_found
from bolly_ray.executors.ray_timeline import TimelineWriter
from bolly_ray.executors.ray_worker import WorkerResult, reap_node, task_attempt
from bolly_ray.executors.runners import RunnerName
from bolly_ray.runtime.transfer import PackedArtifact, pack, unpack
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    ComputeKind,
    Locality,
    Stage,
)

log = logging.getLogger(__name__)

MIB = 1024 * 1024
LOST = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
        ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError,
        ray.exceptions.RayActorError, ray.exceptions.OutOfMemoryError)


class RayExecutor(Executor):
    def __init__(self, registry: Registry, observers: Observers | None = None,
                 address: str | None = None, cpu_stages: RunnerKind = RunnerKind.NATIVE,
                 gpu_stages: RunnerKind = RunnerKind.NATIVE,
                 worker_env: dict[str, str] | None = None) -> None:
        super().__init__(registry, observers, cpu_stages, gpu_stages)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.worker_env = dict(worker_env or {})
        self._embedded = False
        self._cluster: dict[str, float] = {}
        self._gpu_nodes: list[float] = []
        self._pools = ActorPools(registry)
        self._jobs: dict[str, JobSession] = {}
        self._inflight: dict[Hashable, tuple[Path, PoolKey, int]] = {}
        self._shipments = Shipments()
        self._timelines = TimelineWriter()

    # -- backend lifecycle ----------------------------------------------------------------

    def _hardware(self, sessions: list[JobSession]) -> Hardware:
        """This machine for an embedded Ray; on a cluster, also each GPU node's profile,
        detected on the node itself (one small task per GPU node)."""
        if not self.address and not ray.is_initialized():
            return super()._hardware(sessions)
        self._embedded = connect(self.address, self.worker_env) or self._embedded
        # imported here: cluster_hardware imports this module's connect
        from bolly_ray.executors.cluster_hardware import gpu_nodes

        here = profile_here(sessions[0].job.out_root)
        return Hardware(here, ray.cluster_resources().get("GPU", 0.0), gpu_nodes())

    def _start(self) -> None:
        self._embedded = connect(self.address, self.worker_env) or self._embedded
        self._driver_node = ray.get_runtime_context().get_node_id()
        self._cluster = ray.cluster_resources()  # read once: each read asks the GCS
        self._gpu_nodes = [node["Resources"]["GPU"] for node in ray.nodes()
                           if node["Alive"] and node["Resources"].get("GPU", 0.0) > 0]

    def admit(self, sessions: list[JobSession]) -> None:
        super().admit(sessions)
        added = self._pools.add(sessions, self._cluster, self._gpu_nodes)
        cpu = selected_of_kind(sessions, self.registry, ComputeKind.CPU)
        check_serialisable({stage for stage, _ in added} | cpu, self.registry)
        self._jobs.update({s.job.id: s for s in sessions})
        self._timelines.admitted(sessions)
        for key in added:
            # models load while the CPU stages run; reruns load on demand
            if self._pools.demand[key].fresh and self.runner_for(key[0]).name == RunnerName.ACTOR:
                self._pools.start(key)

    def closed(self, session: JobSession) -> None:
        """The job's artifacts leave the object store, and the executor forgets the job: a
        service's executor runs for months."""
        self._shipments.release(session.dir.root)
        self._jobs.pop(session.job.id, None)

    def _gpus_available(self) -> float:
        return float(self._cluster.get("GPU", 0.0))

    def _save_trace(self, sessions: list[JobSession]) -> None:
        self._timelines.save(sessions)

    def _stop(self) -> None:
        self._timelines.flush()
        self._pools.stop()
        self._shipments.clear()
        if self._embedded:
            ray.shutdown()
            self._embedded = False

    # -- submission -------------------------------------------------------------------------

    def submit(self, plan: AttemptPlan, scratch: Path) -> Hashable:
        stage = self.registry[plan.stage]
        shipped = self._shipments.ship(plan)
        runner = self.runner_for(plan.stage)
        if runner.name == RunnerName.ACTOR:
            key = (plan.stage, stage.model_id(plan.settings))
            actor, index = self._pools.acquire(key)
            ref: ray.ObjectRef[WorkerResult] = actor.run.remote(plan, shipped)
            self._inflight[ref] = (scratch, key, index)
        else:
            # the docker runner wraps the task: the task starts the stage's container
            containers = (self.docker.containers if self.docker is not None
                          and runner.name == RunnerName.DOCKER else None)
            ref = task_attempt.options(**self._task_options(stage, plan)).remote(
                stage, plan, shipped, containers)
            self._inflight[ref] = (scratch, ("", None), -1)
        return ref

    def _native_runner(self, stage: str) -> RunnerName:
        compute = self.registry[stage].spec.compute
        return RunnerName.ACTOR if compute == ComputeKind.GPU else RunnerName.TASK

    def collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]:
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            more, _ = ray.wait([h for h in handles if h not in ready],
                               num_returns=len(handles) - len(ready), timeout=0)
            ready += more
        return [(ref, self._result(ref)) for ref in ready]

    def _result(self, ref: ray.ObjectRef[WorkerResult]) -> AttemptOutcome | BaseException:
        scratch, key, index = self._inflight.pop(ref)
        if index >= 0:
            self._pools.release(key, index)
        try:
            result: WorkerResult = ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause
            return cause if isinstance(cause, Exception) else RuntimeError(str(err))
        except LOST as err:
            if index >= 0 and isinstance(err, ray.exceptions.ActorDiedError):
                self._pools.replace_lost(key, index, str(err)[:2000])
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

    def _task_options(self, stage: Stage[Any], plan: AttemptPlan) -> dict[str, Any]:
        resources = plan.resources
        options: dict[str, Any] = {"num_cpus": resources.cpus, "num_gpus": resources.gpus,
                                   "memory": resources.memory_mb * MIB,
                                   "scheduling_strategy": "SPREAD"}
        options.update(self._placement(stage, plan))
        return options

    def _placement(self, stage: Stage[Any], plan: AttemptPlan) -> dict[str, Any]:
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


class Shipments:
    """Inputs for remote attempts: the media by path, every other artifact packed into the
    object store once per job, however many attempts read it, and let go when the job ends."""

    def __init__(self) -> None:
        self._puts: dict[tuple[str, int, int], ray.ObjectRef[PackedArtifact]] = {}

    def ship(self, plan: AttemptPlan) -> dict[str, Any]:
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

    def release(self, folder: Path) -> None:
        """Drop the object refs of artifacts under `folder` (Ray frees what nothing holds)."""
        for key in [k for k in self._puts if Path(k[0]).is_relative_to(folder)]:
            del self._puts[key]

    def held(self) -> list[Path]:
        """The artifacts in the object store now."""
        return sorted({Path(key[0]) for key in self._puts})

    def clear(self) -> None:
        self._puts.clear()


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


def check_serialisable(stages: set[str], registry: Registry) -> None:
    problems = []
    for name in sorted(stages):
        try:
            ray.cloudpickle.dumps(registry[name])
        except Exception as err:  # any pickling failure is the stage author's to fix
            problems.append(f"{name}: the stage cannot be sent to a worker: {err}")
    if problems:
        raise PreflightError("\n".join(problems))


