"""The Ray side of an attempt: a task function (CPU stages, and any stage in a container),
an actor class for GPU stages that keep their model loaded.

Both are defined once, at import. Inputs arrive packed (through the object store) or, for
the source media, as a path on the node; they are unpacked into a private scratch folder,
the stage runs through the same `run_attempt` as everywhere else, and its outputs go back
packed. An actor loads its model once and reports, with each result, how many loads happened
since its previous result: 1 for its first job (or after a restart), 0 after that.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray

from bolly_ray.core.secrets import Secrets
from bolly_ray.core.wire import AttemptPlan
from bolly_ray.errors import BollyRayError
from bolly_ray.runtime.attempt import run_attempt
from bolly_ray.runtime.containers import StageContainers, docker_client, reap
from bolly_ray.runtime.scratch import new_scratch, remove_orphaned
from bolly_ray.runtime.transfer import PackedArtifact, pack, unpack
from bolly_ray.spec import Stage, StageSettings

Shipped = Mapping[str, "ray.ObjectRef[PackedArtifact] | str"]


@dataclass
class WorkerResult:
    outputs: dict[str, PackedArtifact]
    metrics: dict[str, float] = field(default_factory=dict)
    runner: str = "task"
    node_id: str = ""
    node_ip: str = ""
    image: str | None = None


def execute(stage: Stage[Any], plan: AttemptPlan, shipped: Shipped, model: Any, runner: str,
            containers: StageContainers | None = None) -> WorkerResult:
    started = time.perf_counter()
    remove_orphaned()  # what workers killed on this node left behind
    scratch = new_scratch(plan.stage)
    try:
        inputs = {name: _materialise(value, scratch / "in" / name)
                  for name, value in shipped.items()}
        local_plan = replace(plan, inputs=inputs)
        if containers is not None:
            # the GPUs Ray granted this task (none for a CPU attempt), by id, as Docker wants
            gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
            outcome = containers(stage, local_plan, scratch / "attempt", gpus)
        else:
            (scratch / "out").mkdir()
            outcome = run_attempt(stage, local_plan, scratch / "out", model, runner)
        packed = {name: pack(outcome.scratch / rel) for name, rel in outcome.outputs.items()}
        context = ray.get_runtime_context()
        # the attempt as the worker saw it: inputs in, stage, outputs packed; no queueing
        metrics = {**outcome.metrics, "worker_s": round(time.perf_counter() - started, 3)}
        return WorkerResult(packed, metrics, outcome.runner, context.get_node_id(),
                            ray.util.get_node_ip_address(), outcome.image)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _materialise(value: ray.ObjectRef[PackedArtifact] | str, folder: Path) -> Path:
    if isinstance(value, str):
        return Path(value)
    return unpack(ray.get(value), folder)


@ray.remote(max_retries=0)
def task_attempt(stage: Stage[Any], plan: AttemptPlan, shipped: dict[str, Any],
                 containers: StageContainers | None = None) -> WorkerResult:
    return execute(stage, plan, shipped, None, "task", containers)


@ray.remote(max_task_retries=0)
class StageActor:
    """Owns one loaded model and runs one stage's attempts for every job, one at a time."""

    def __init__(self, stage: Stage[Any], settings: StageSettings, secrets: Secrets) -> None:
        self.stage = stage
        self.load_error: Exception | None = None
        started = time.perf_counter()
        try:
            with secrets.exported():  # the stage's own secrets, only while it loads
                self.model = stage.load_model(settings)
        except Exception as err:  # reported by run(): a dead actor would look like a lost node
            self.model, self.load_error = None, err
        self.unreported_loads = 1
        self.load_s = round(time.perf_counter() - started, 3)

    def run(self, plan: AttemptPlan, shipped: dict[str, Any]) -> WorkerResult:
        if self.load_error is not None:
            raise self.load_error
        result = execute(self.stage, plan, shipped, self.model, "actor")
        result.metrics["model_loads"] = self.unreported_loads
        if self.unreported_loads:
            result.metrics["model_load_s"] = self.load_s
        self.unreported_loads = 0
        return result


@ray.remote(max_retries=0)
def reap_node(job_folders: set[str]) -> int:
    """Remove this node's leftover containers of these job folders (0 where Docker is
    absent)."""
    try:
        client = docker_client()
    except BollyRayError:
        return 0
    return reap(client, job_folders)
