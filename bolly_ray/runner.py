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
from bolly_ray.executors import JobOutcome, LocalExecutor
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
             only: str | None, start: str | None, force: bool, quiet: bool = False
             ) -> list[JobOutcome]:
    jobs = load_jobs(paths, registry, overrides)
    selection = Selection(tuple((only or "").split(",")) if only else (), start, force)
    observers = Observers([] if quiet else [LoggingObserver()])
    executor = LocalExecutor(registry, observers)
    return executor.run(jobs, selection)
