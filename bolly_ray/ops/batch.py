"""Running jobs from job files: load them all, pick the executor, attach observers.

What the command line asked (`RunOptions`) is validated once, here at the boundary, into
the typed choices the executors take. Every job file is read and validated before anything
runs, and all their problems are reported together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bolly_ray.core.job import ExecutorKind, JobBase, RunnerKind, load_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.events import Observers
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import BollyRayError, UsageError
from bolly_ray.executors import Executor, JobOutcome, LocalExecutor


def load_jobs(paths: Sequence[Path], registry: Registry, overrides: Sequence[str]
              ) -> list[JobBase]:
    jobs, problems = [], []
    for path in paths:
        try:
            jobs.append(load_job(path, registry.specs, overrides))
        except BollyRayError as err:
            problems.append(str(err))
    ids = [j.id for j in jobs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        problems.append(f"the same job id appears more than once: {', '.join(dupes)}")
    if problems:
        raise UsageError("\n".join(problems))
    return jobs


OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class RunOptions(BaseModel):
    """What a run was asked on the command line; unset choices come from the job files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overrides: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    start: str | None = None
    force: bool = False
    executor: ExecutorKind | None = None
    address: str | None = None
    cpu_stages: RunnerKind | None = None
    gpu_stages: RunnerKind | None = None
    offline: bool = False

    @classmethod
    def from_cli(cls, only: str | None = None, **given: Any) -> RunOptions:
        """The options from the command line's strings; a bad choice is a usage error."""
        stages = tuple(only.split(",")) if only else ()
        try:
            return cls(only=stages, **{k: v for k, v in given.items() if v is not None})
        except ValidationError as err:
            raise UsageError("\n".join(map(unknown_choice, err.errors()))) from None

    @property
    def selection(self) -> Selection:
        return Selection(self.only, self.start, self.force)


CHOICES = {"executor": ExecutorKind, "cpu_stages": RunnerKind, "gpu_stages": RunnerKind}


def unknown_choice(error: Any) -> str:
    option = str(error["loc"][0])
    kinds = CHOICES.get(option)
    if kinds is None:
        return f"--{option.replace('_', '-')}: {error['msg']}"
    return (f"unknown --{option.replace('_', '-')} {error['input']!r} "
            f"({' or '.join(kind.value for kind in kinds)})")


def run_jobs(paths: Sequence[Path], registry: Registry, options: RunOptions,
             observers: Observers | None = None) -> list[JobOutcome]:
    jobs = load_jobs(paths, registry, options.overrides)
    chosen = make_executor(jobs, registry, observers or Observers(), options)
    return chosen.run(jobs, options.selection)


def make_executor(jobs: Sequence[JobBase], registry: Registry, observers: Observers,
                  options: RunOptions | None = None) -> Executor:
    """The executor the jobs ask for; command-line choices win over the job files."""
    given = options or RunOptions()
    chosen = _shared(jobs, "executor", given.executor)
    runners = {"cpu_stages": _shared(jobs, "cpu_stages", given.cpu_stages),
               "gpu_stages": _shared(jobs, "gpu_stages", given.gpu_stages)}
    worker_env = OFFLINE_ENV if _shared(jobs, "offline", given.offline or None) else {}
    os.environ.update(worker_env)  # before any hub library reads it
    if chosen == ExecutorKind.LOCAL:
        return LocalExecutor(registry, observers, **runners)
    from bolly_ray.executors.ray_executor import RayExecutor

    return RayExecutor(registry, observers, address=_shared(jobs, "address", given.address),
                       worker_env=worker_env, **runners)


def _shared(jobs: Sequence[JobBase], field: str, override: str | bool | None) -> Any:
    """One execution setting for the whole run: the command line's, or the jobs' common one."""
    if override:
        return override
    values = {getattr(job.execution, field) for job in jobs}
    if len(values) > 1:
        raise UsageError(f"jobs run together must share execution.{field} "
                         f"(or pass --{field.replace('_', '-')})")
    return values.pop()
