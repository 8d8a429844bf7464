"""The executor template: preflight, run, publish, report.

`Executor.run` validates every job's pipeline before anything starts (all problems of all
jobs at once), then hands the sessions to a subclass's `_run`. The stage-level policy shared by
every executor lives here too: skip disabled stages, reuse cached outputs, retry transient
errors with backoff, fail permanent errors at once, and keep going after optional failures.
"""

from __future__ import annotations

import logging
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bolly_ray.driver import AttemptOutcome, AttemptPlan, JobSession, Selection, final_status
from bolly_ray.errors import (
    BollyRayError,
    StageTimeoutError,
    TransientStageError,
    UsageError,
)
from bolly_ray.events import Observers, StageEvent
from bolly_ray.job import JobBase
from bolly_ray.manifest import JobStatus, StageStatus
from bolly_ray.registry import Registry

log = logging.getLogger(__name__)

AttemptFn = Callable[[AttemptPlan, Path], AttemptOutcome]


@dataclass
class JobOutcome:
    job_id: str
    job_dir: Path
    status: JobStatus
    error: str | None = None
    failed_stage: str | None = None
    stages: dict[str, str] = field(default_factory=dict)


class Executor(ABC):
    def __init__(self, registry: Registry, observers: Observers | None = None) -> None:
        self.registry = registry
        self.observers = observers or Observers()

    def run(self, jobs: Sequence[JobBase], selection: Selection | None = None
            ) -> list[JobOutcome]:
        sessions = self.preflight(jobs, selection or Selection())
        return self._run(sessions)

    def preflight(self, jobs: Sequence[JobBase], selection: Selection) -> list[JobSession]:
        sessions, problems = [], []
        for job in jobs:
            try:
                sessions.append(JobSession(job, self.registry, selection))
            except UsageError as err:
                problems.append(f"job {job.id}: {err}")
        if problems:
            raise UsageError("\n".join(problems))
        return sessions

    @abstractmethod
    def _run(self, sessions: list[JobSession]) -> list[JobOutcome]: ...

    # -- the shared stage policy -------------------------------------------------------------

    def run_job(self, session: JobSession, attempt: AttemptFn) -> JobOutcome:
        """Run one job's selected stages in order with `attempt` doing the work."""
        try:
            session.open()
        except BollyRayError as err:
            return JobOutcome(session.job.id, session.dir.root, JobStatus.FAILED, str(err))
        failed: tuple[str, str] | None = None
        try:
            with job_log(session.dir.logs / "run.log"):
                failed = self._run_stages(session, attempt)
        finally:
            status = final_status(session, session.selected)
            session.close(status)
        return self._outcome(session, status, failed)

    def _run_stages(self, session: JobSession, attempt: AttemptFn) -> tuple[str, str] | None:
        for stage in session.selected:
            error = self.run_stage(session, stage, attempt)
            if error and session.pipeline.specs[stage].critical:
                return stage, error
        return None

    def run_stage(self, session: JobSession, stage: str, attempt: AttemptFn) -> str | None:
        """Run or skip one stage; returns the error message when it failed."""
        job_id = session.job.id
        if session.is_disabled(stage):
            session.mark_skipped(stage, "disabled in the job settings")
            self._emit(job_id, stage, StageStatus.SKIPPED, message="disabled")
            return None
        blocked = session.blocked_by(stage)
        if blocked:
            message = f"inputs not available: {', '.join(blocked)}"
            session.mark_failed(stage, message)
            self._emit(job_id, stage, StageStatus.FAILED, message=message)
            return message
        plan = session.plan(stage)
        if session.is_cached(plan):
            session.mark_cached(stage)
            self._emit(job_id, stage, StageStatus.CACHED)
            return None
        return self._attempts(session, plan, attempt)

    def _attempts(self, session: JobSession, plan: AttemptPlan, attempt: AttemptFn) -> str | None:
        policy, started = plan.spec.retry, time.monotonic()
        for number in range(1, policy.max_attempts + 1):
            session.mark_running(plan.stage, number)
            self._emit(plan.job_id, plan.stage, StageStatus.RUNNING, attempt=number)
            try:
                outcome = attempt(plan, session.dir.new_scratch(plan.stage, number))
                session.publish(plan, outcome, started)
            except Exception as err:
                error, retry = self._classify(plan, err)
                if retry and number < policy.max_attempts:
                    log.warning("%s: %s attempt %d failed, retrying: %s",
                                plan.job_id, plan.stage, number, error)
                    time.sleep(policy.backoff_s * 2 ** (number - 1))
                    continue
                session.mark_failed(plan.stage, error)
                self._emit(plan.job_id, plan.stage, StageStatus.FAILED, attempt=number,
                           message=error)
                return error
            self._emit(plan.job_id, plan.stage, StageStatus.SUCCEEDED, attempt=number,
                       runner=outcome.runner, duration_s=time.monotonic() - started)
            return None
        raise AssertionError("unreachable: retry loop always returns")

    @staticmethod
    def _classify(plan: AttemptPlan, err: Exception) -> tuple[str, bool]:
        """(one-line message, whether a retry may help)."""
        if isinstance(err, TransientStageError):
            return str(err), True
        if isinstance(err, StageTimeoutError):
            return str(err), plan.spec.retry.retry_timeouts
        if isinstance(err, BollyRayError):
            return str(err), False
        log.debug("%s crashed:\n%s", plan.stage, "".join(traceback.format_exception(err)))
        return f"{plan.stage} crashed: {type(err).__name__}: {err}", False

    def _emit(self, job_id: str, stage: str, status: StageStatus, **kw: object) -> None:
        self.observers.emit(StageEvent(job_id=job_id, stage=stage, status=status, **kw))

    @staticmethod
    def _outcome(session: JobSession, status: JobStatus,
                 failed: tuple[str, str] | None) -> JobOutcome:
        stages = {name: r.status.value for name, r in session.manifest.stages.items()}
        stage, error = failed if failed else (None, None)
        return JobOutcome(session.job.id, session.dir.root, status, error, stage, stages)


@contextmanager
def job_log(path: Path) -> Iterator[None]:
    """Copy bolly-ray's log records, tracebacks included, into a job's `logs/run.log`."""
    logger = logging.getLogger("bolly_ray")
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(previous)
        logger.removeHandler(handler)
        handler.close()
