"""Running jobs from job files: load them all, pick the executor, attach observers.

Every job file is read and validated before anything runs, and all their problems are
reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bolly_ray.driver import Selection
from bolly_ray.errors import BollyRayError, UsageError
from bolly_ray.events import LoggingObserver, Observers
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


def run_jobs(paths: Sequence[Path], registry: Registry, overrides: Sequence[str],
             only: str | None, start: str | None, force: bool, quiet: bool = False,
             executor: str | None = None, address: str | None = None) -> list[JobOutcome]:
    jobs = load_jobs(paths, registry, overrides)
    selection = Selection(tuple((only or "").split(",")) if only else (), start, force)
    observers = Observers([] if quiet else [LoggingObserver()])
    return make_executor(jobs, registry, observers, executor, address).run(jobs, selection)


def make_executor(jobs: Sequence[JobBase], registry: Registry, observers: Observers,
                  kind: str | None = None, address: str | None = None) -> Executor:
    """The executor the jobs ask for; command-line choices win over the job files."""
    kinds = {kind} if kind else {j.execution.executor for j in jobs}
    addresses = {address} if address else {j.execution.address for j in jobs}
    if len(kinds) > 1 or len(addresses) > 1:
        raise UsageError("jobs run together must share execution.executor and "
                         "execution.address (or pass --executor / --address)")
    chosen, where = kinds.pop(), addresses.pop()
    if chosen == "local":
        return LocalExecutor(registry, observers)
    if chosen != "ray":
        raise UsageError(f"unknown executor {chosen!r} (ray or local)")
    from bolly_ray.executors.ray_executor import RayExecutor

    return RayExecutor(registry, observers, address=where)
