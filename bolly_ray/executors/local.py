"""The local executor: every stage in this process, one attempt at a time.

It needs nothing but Python, which makes it the executor of unit tests and of quick runs
without Ray. An attempt runs as soon as it is submitted; models of GPU-kind stages are
loaded once per run and shared by every job, as Ray's actors do.
"""

from __future__ import annotations

from collections.abc import Hashable
from itertools import count
from pathlib import Path
from typing import Any

from bolly_ray.core.hardware import detect_gpus
from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.executors.base import Executor, Finished
from bolly_ray.executors.runners import RunnerName
from bolly_ray.runtime.attempt import run_attempt
from bolly_ray.spec import ComputeKind


class LocalExecutor(Executor):
    def _start(self) -> None:
        self._models: dict[tuple[str, str | None], Any] = {}
        self._done: list[Finished] = []
        self._handles = count()
        self._gpus = detect_gpus() if self.in_docker else 0

    def submit(self, plan: AttemptPlan, scratch: Path) -> Hashable:
        handle = next(self._handles)
        try:
            result: AttemptOutcome | BaseException = self._attempt(plan, scratch)
        except Exception as err:
            result = err
        self._done.append((handle, result))
        return handle

    def _gpus_available(self) -> float:
        return self._gpus

    def can_submit(self) -> bool:
        return not self._done  # one attempt at a time, published before the next starts

    def collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]:
        done, self._done = self._done, []
        return done

    def _attempt(self, plan: AttemptPlan, scratch: Path) -> AttemptOutcome:
        stage = self.registry[plan.stage]
        if self.docker is not None and self.runner_for(plan.stage).name == RunnerName.DOCKER:
            return self.docker.run_here(stage, plan, scratch)
        if plan.spec.compute != ComputeKind.GPU:
            return run_attempt(stage, plan, scratch, runner="local")
        key = (plan.stage, stage.model_id(plan.settings))
        loads = 0 if key in self._models else 1
        if loads:
            self._models[key] = stage.load_model(plan.settings)
        outcome = run_attempt(stage, plan, scratch, self._models[key], runner="local")
        outcome.metrics["model_loads"] = loads
        return outcome
