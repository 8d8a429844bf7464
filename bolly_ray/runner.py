"""Running jobs from job files: load them all, pick the executor, attach observers.

Every job file is read and validated before anything runs, and all their problems are
reported together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bolly_ray.driver import Selection
from bolly_ray.errors import BollyRayError, UsageError
from bolly_ray.events import Observers
from bolly_ray.executors import Executor, JobOutcome, LocalExecutor
from bolly_ray.job import JobBase, load_job
from bolly_ray.registry import Registry


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


def run_jobs(paths: Sequence[Path], registry: Registry, overrides: Sequence[str],
             only: str | None, start: str | None, force: bool, observers: Observers | None = None,
             executor: str | None = None, address: str | None = None,
             cpu_stages: str | None = None, offline: bool = False,
             gpu_stages: str | None = None) -> list[JobOutcome]:
    jobs = load_jobs(paths, registry, overrides)
    selection = Selection(tuple((only or "").split(",")) if only else (), start, force)
    chosen = make_executor(jobs, registry, observers or Observers(), executor, address,
                           cpu_stages, offline, gpu_stages)
    return chosen.run(jobs, selection)


def make_executor(jobs: Sequence[JobBase], registry: Registry, observers: Observers,
                  kind: str | None = None, address: str | None = None,
                  cpu_stages: str | None = None, offline: bool = False,
                  gpu_stages: str | None = None) -> Executor:
    """The executor the jobs ask for; command-line choices win over the job files."""
    chosen = _shared(jobs, "executor", kind)
    where = _shared(jobs, "address", address)
    runners = {"cpu_stages": _shared(jobs, "cpu_stages", cpu_stages),
               "gpu_stages": _shared(jobs, "gpu_stages", gpu_stages)}
    worker_env = OFFLINE_ENV if _shared(jobs, "offline", offline or None) else {}
    os.environ.update(worker_env)  # before any hub library reads it
    for option, value in runners.items():
        if value not in ("native", "docker"):
            raise UsageError(f"unknown --{option.replace('_', '-')} {value!r} "
                             "(native or docker)")
    if chosen == "local":
        return LocalExecutor(registry, observers, **runners)
    if chosen != "ray":
        raise UsageError(f"unknown executor {chosen!r} (ray or local)")
    from bolly_ray.executors.ray_executor import RayExecutor

    return RayExecutor(registry, observers, address=where, worker_env=worker_env, **runners)


def _shared(jobs: Sequence[JobBase], field: str, override: str | None) -> Any:
    """One execution setting for the whole run: the command line's, or the jobs' common one."""
    if override:
        return override
    values = {getattr(job.execution, field) for job in jobs}
    if len(values) > 1:
        raise UsageError(f"jobs run together must share execution.{field} "
                         f"(or pass --{field.replace('_', '-')})")
    return values.pop()
