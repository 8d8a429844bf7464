"""The local executor: every stage in this process, one after another.

It needs nothing but Python, which makes it the executor of unit tests and of quick runs
on a laptop without Ray. Models of GPU-kind stages are loaded once per run and shared by
every job, as Ray's actors do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bolly_ray.attempt import run_attempt
from bolly_ray.driver import AttemptOutcome, AttemptPlan, JobSession
from bolly_ray.executors.base import Executor, JobOutcome
from bolly_ray.spec import ComputeKind


class LocalExecutor(Executor):
    def _run(self, sessions: list[JobSession]) -> list[JobOutcome]:
        self._models: dict[tuple[str, str | None], Any] = {}
        return [self.run_job(session, self._attempt) for session in sessions]

    def _attempt(self, plan: AttemptPlan, scratch: Path) -> AttemptOutcome:
        stage = self.registry[plan.stage]
        model, loads = None, 0
        if plan.spec.compute == ComputeKind.GPU:
            model, loads = self._model(plan)
        outcome = run_attempt(stage, plan, scratch, model, runner="local")
        if plan.spec.compute == ComputeKind.GPU:
            outcome.metrics["model_loads"] = loads
        return outcome

    def _model(self, plan: AttemptPlan) -> tuple[Any, int]:
        stage = self.registry[plan.stage]
        key = (plan.stage, stage.model_id(plan.settings))
        if key in self._models:
            return self._models[key], 0
        self._models[key] = stage.load_model(plan.settings)
        return self._models[key], 1
