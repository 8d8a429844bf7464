"""The scheduler: jobs driven together over one backend, in one run state, while more arrive.

Jobs come through the intake (`submit`, `cancel`, `close`), from the batch CLI all at once
or from a service one at a time while others run; `drive` runs in one thread until the
intake is closed and every job has ended, and observers see every job and stage event. A
job is closed (its manifest final, its folder's lock released) as soon as it ends. A stage
starts as soon as the stages it reads from have finished, so stages of different
jobs (and independent stages of one job) overlap wherever the backend has room. Per stage
it skips (switched off, nothing to do), fails (inputs missing), reuses cached outputs, or
launches an attempt; a failed attempt is retried as the retry policy says; a critical
failure stops its job, an optional one does not. The backend only says whether it takes an
attempt now, starts one, and reports finished ones (`Backend`).
"""

from __future__ import annotations

import logging
import queue
import shutil
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bolly_ray.driver import JobSession, final_status
from bolly_ray.errors import BollyRayError, WorkerLostError
from bolly_ray.events import JobEvent, Observers, StageEvent
from bolly_ray.executors.policy import classify, retry_delay
from bolly_ray.joblog import close_job_log, open_job_log, working_for
from bolly_ray.manifest import JobStatus, StageStatus
from bolly_ray.wire import AttemptOutcome, AttemptPlan

log = logging.getLogger(__name__)

POLL_S = 0.25
"""While the intake is open, how long a wait for attempts may keep a new job waiting."""

Finished = tuple[Hashable, AttemptOutcome | BaseException]


class Backend(Protocol):
    """Where attempts run (in this process, on Ray), as the scheduler sees it."""

    def can_submit(self) -> bool: ...
    def submit(self, plan: AttemptPlan, scratch: Path) -> Hashable: ...
    def collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]: ...
    def plan(self, session: JobSession, stage: str) -> AttemptPlan: ...
    def runner(self, plan: AttemptPlan) -> str: ...
    def opened(self, session: JobSession) -> None: ...
    def ended(self, sessions: list[JobSession]) -> None: ...


@dataclass
class JobOutcome:
    job_id: str
    job_dir: Path
    status: JobStatus
    error: str | None = None
    failed_stage: str | None = None
    stages: dict[str, str] = field(default_factory=dict)


@dataclass
class Flight:
    """One submitted attempt."""

    session: JobSession
    plan: AttemptPlan
    attempt: int
    started: float
    losses: int = 0
    """How many of the earlier attempts died with their worker."""
    scratch: Path | None = None
    """Where this attempt's results land on the driver's disk."""


@dataclass
class JobProgress:
    session: JobSession
    waiting: list[str]
    log: logging.Handler | None = None
    running: set[str] = field(default_factory=set)
    failed: tuple[str, str] | None = None
    cancelled: bool = False

    def stopped(self) -> bool:
        """No stage of it may start any more (a critical one failed, or it was cancelled)."""
        return self.failed is not None or self.cancelled

    def ended(self) -> bool:
        return not self.running and (self.stopped() or not self.waiting)

    def is_ready(self, stage: str) -> bool:
        """Whether every stage upstream of this waiting one has finished."""
        upstream = set(self.session.pipeline.upstream(stage))
        return not upstream & (set(self.waiting) | self.running)


@dataclass
class RunState:
    """What the scheduler knows mid-run: the jobs, the attempts in flight, the retries due."""

    jobs: dict[str, JobProgress] = field(default_factory=dict)
    flights: dict[Hashable, Flight] = field(default_factory=dict)
    retries: list[tuple[float, Flight]] = field(default_factory=list)
    failed_submits: list[Finished] = field(default_factory=list)

    def idle(self) -> bool:
        return not self.flights and not self.retries and not self.failed_submits

    def due(self, now: float) -> list[Flight]:
        ready = [flight for when, flight in self.retries if when <= now]
        self.retries = [(when, flight) for when, flight in self.retries if when > now]
        return ready

    def wait_s(self, now: float) -> float | None:
        return max(0.0, min(when for when, _ in self.retries) - now) if self.retries else None


class Scheduler:
    def __init__(self, backend: Backend, observers: Observers) -> None:
        self.backend = backend
        self.observers = observers
        self.state = RunState()
        self.outcomes: dict[str, JobOutcome] = {}
        self._intake: queue.SimpleQueue[tuple[str, JobSession | str | None]] = (
            queue.SimpleQueue())
        self._accepting = True
        self._order: list[str] = []
        self._ended: list[JobSession] = []
        """Jobs closed since the scheduler was last idle, for the backend's `ended`."""

    # -- the intake: safe to call from any thread ------------------------------------------

    def submit(self, session: JobSession) -> None:
        """Run this job (preflighted) as soon as the backend has room."""
        self._intake.put(("submit", session))

    def cancel(self, job_id: str) -> None:
        """Start no more stages of the job; attempts already running finish."""
        self._intake.put(("cancel", job_id))

    def close(self) -> None:
        """No more jobs: `drive` returns once the submitted ones have ended."""
        self._intake.put(("close", None))

    # -- the loop ----------------------------------------------------------------------------

    def drive(self) -> list[JobOutcome]:
        """Run every submitted job to its end; their outcomes in the order they came."""
        try:
            self._loop()
        finally:
            for job in list(self.state.jobs.values()):  # interrupted: close what is open
                self._close(job)
            self._idle()
        return [self.outcomes[job_id] for job_id in self._order]

    def _loop(self) -> None:
        while True:
            self._take(block=self._accepting and self.state.idle() and not self.state.jobs)
            for job in list(self.state.jobs.values()):
                with working_for(job.session.job.id):
                    self._start_ready(job)
            for flight in self.state.due(time.monotonic()):
                self._launch(flight)
            for job in [j for j in self.state.jobs.values() if j.ended()]:
                self._close(job)
            if self.state.idle() and not self.state.jobs:
                self._idle()
                if not self._accepting:
                    return
                continue
            for handle, result in self._wait():
                flight = self.state.flights.pop(handle)
                with working_for(flight.plan.job_id):
                    self._finish(flight, result)

    def _take(self, block: bool) -> None:
        """Everything the intake holds; with `block`, wait for the first of it."""
        while True:
            try:
                kind, value = self._intake.get(block=block)
            except queue.Empty:
                return
            block = False
            if kind == "close":
                self._accepting = False
            elif kind == "cancel" and isinstance(value, str):
                self._cancel(value)
            elif isinstance(value, JobSession):
                self._admit(value)

    def _admit(self, session: JobSession) -> None:
        job_id = session.job.id
        self._order.append(job_id)
        if job_id in self.state.jobs:
            self.outcomes[job_id] = JobOutcome(job_id, session.dir.root, JobStatus.FAILED,
                                               f"job {job_id} is running already")
            return
        refused = open_job(session, self.observers)
        if refused is not None:
            self.outcomes[job_id] = refused
            return
        self.backend.opened(session)
        self.state.jobs[job_id] = JobProgress(
            session, list(session.selected), open_job_log(job_id, session.dir.logs / "run.log"))

    def _cancel(self, job_id: str) -> None:
        job = self.state.jobs.get(job_id)
        if job is not None and not job.cancelled:
            job.cancelled = True
            log.warning("%s: cancelled; %d stage(s) running will finish", job_id,
                        len(job.running))

    def _close(self, job: JobProgress) -> None:
        job_id = job.session.job.id
        del self.state.jobs[job_id]
        try:
            self.outcomes[job_id] = close_job(job, self.observers)
        finally:
            self._ended.append(job.session)
            if job.log is not None:
                close_job_log(job.log)

    def _idle(self) -> None:
        """Nothing runs: the backend may do its per-run work for the jobs that ended."""
        ended, self._ended = self._ended, []
        if ended:
            self.backend.ended(ended)

    def _wait(self) -> list[Finished]:
        """Finished attempts; sleeps until the first retry is due when only retries wait.
        While jobs may still come, no wait is longer than POLL_S."""
        timeout = self.state.wait_s(time.monotonic())
        if self._accepting:
            timeout = POLL_S if timeout is None else min(timeout, POLL_S)
        finished, self.state.failed_submits = self.state.failed_submits, []
        if not finished and self.state.flights:
            return self.backend.collect(list(self.state.flights), timeout)
        if not finished:
            time.sleep(POLL_S if timeout is None else timeout)
        return finished

    def _start_ready(self, job: JobProgress) -> None:
        for stage in list(job.waiting):  # a stage cached now readies the next in this pass
            if job.stopped() or not self.backend.can_submit():
                return
            if not job.is_ready(stage):
                continue
            job.waiting.remove(stage)
            error = self._begin(job, stage)
            if error and job.session.is_critical(stage):
                job.failed = (stage, error)

    def _begin(self, job: JobProgress, stage: str) -> str | None:
        """Skip, fail, reuse or launch one stage; returns an error when it failed at once."""
        session, job_id = job.session, job.session.job.id
        reason = session.skip_reason(stage)
        if reason:
            session.book.skipped(stage, reason)
            self._emit(job_id, stage, StageStatus.SKIPPED, message=reason)
            return None
        blocked = session.blocked_by(stage)
        if blocked:
            message = f"inputs not available: {', '.join(blocked)}"
            session.book.failed(stage, message)
            self._emit(job_id, stage, StageStatus.FAILED, message=message)
            return message
        plan = self.backend.plan(session, stage)
        if session.is_cached(plan):
            session.book.cached(stage)
            self._emit(job_id, stage, StageStatus.CACHED)
            return None
        job.running.add(stage)
        self._launch(Flight(session, plan, 1, time.monotonic()))
        return None

    def _launch(self, flight: Flight) -> None:
        session, plan = flight.session, flight.plan
        session.book.running(plan.stage, flight.attempt, session.chosen(plan.stage))
        self._emit(plan.job_id, plan.stage, StageStatus.RUNNING, attempt=flight.attempt,
                   runner=self.backend.runner(plan))
        scratch = flight.scratch = session.dir.new_scratch(plan.stage, flight.attempt)
        handle: Hashable
        try:
            handle = self.backend.submit(plan, scratch)
        except Exception as err:  # a submission that fails is a failed attempt
            handle = ("failed-submit", id(flight))
            self.state.failed_submits.append((handle, err))
        self.state.flights[handle] = flight

    def _finish(self, flight: Flight, result: AttemptOutcome | BaseException) -> None:
        if isinstance(result, AttemptOutcome):
            try:
                flight.session.publish(flight.plan, result, flight.started)
            except Exception as err:
                result = err
        if isinstance(result, AttemptOutcome):
            self._succeeded(flight, result)
        elif isinstance(result, KeyboardInterrupt | SystemExit):
            raise result
        else:
            self._failed(flight, result)

    def _succeeded(self, flight: Flight, result: AttemptOutcome) -> None:
        plan = flight.plan
        self.state.jobs[plan.job_id].running.discard(plan.stage)
        self._emit(plan.job_id, plan.stage, StageStatus.SUCCEEDED, attempt=flight.attempt,
                   runner=result.runner, node=result.node_ip,
                   duration_s=time.monotonic() - flight.started, metrics=result.metrics)

    def _failed(self, flight: Flight, error: BaseException) -> None:
        plan, job = flight.plan, self.state.jobs[flight.plan.job_id]
        if flight.scratch is not None:  # a failed attempt's leftovers: free the space now
            shutil.rmtree(flight.scratch, ignore_errors=True)
        message, retryable = classify(plan, error)
        delay = (retry_delay(plan.spec.retry, flight.attempt, flight.losses, error)
                 if retryable else None)
        if delay is not None:
            log.warning("%s: %s attempt %d failed, retrying in %.1f s: %s", plan.job_id,
                        plan.stage, flight.attempt, delay, message)
            lost = isinstance(error, WorkerLostError)
            self.state.retries.append((time.monotonic() + delay, Flight(
                flight.session, plan, flight.attempt + 1, flight.started,
                flight.losses + lost)))
            return
        job.running.discard(plan.stage)
        flight.session.book.failed(plan.stage, message)
        self._emit(plan.job_id, plan.stage, StageStatus.FAILED, attempt=flight.attempt,
                   runner=self.backend.runner(plan),
                   duration_s=time.monotonic() - flight.started, message=message)
        if flight.session.is_critical(plan.stage) and job.failed is None:
            job.failed = (plan.stage, message)

    def _emit(self, job_id: str, stage: str, status: StageStatus, *, attempt: int = 0,
              runner: str | None = None, node: str | None = None, duration_s: float | None = None,
              message: str | None = None, metrics: dict[str, float] | None = None) -> None:
        audio = (metrics or {}).get("audio_s")
        self.observers.emit(StageEvent(
            job_id=job_id, stage=stage, status=status, attempt=attempt, runner=runner,
            node=node, duration_s=duration_s, message=message,
            audio_s=float(audio) if audio is not None else None))


def open_job(session: JobSession, observers: Observers) -> JobOutcome | None:
    """Lock and prepare the job's folder; the job's failed outcome when that cannot be."""
    try:
        session.open()
    except BollyRayError as err:
        observers.emit(JobEvent(session.job.id, JobStatus.FAILED.value,
                                job_dir=str(session.dir.root), message=str(err)))
        return JobOutcome(session.job.id, session.dir.root, JobStatus.FAILED, str(err))
    observers.emit(JobEvent(session.job.id, "running", tuple(session.selected),
                            str(session.dir.root)))
    return None


def close_job(job: JobProgress, observers: Observers) -> JobOutcome:
    """Record the job's final status, release its folder, and say how it ended."""
    session = job.session
    status = final_status(session, session.selected)
    session.close(status)
    stages = {name: r.status.value for name, r in session.manifest.stages.items()}
    stage, error = job.failed if job.failed else (None, None)
    if error is None and job.cancelled and status == JobStatus.FAILED:
        error = "cancelled"
    observers.emit(JobEvent(session.job.id, status.value, job_dir=str(session.dir.root),
                            message=f"{stage}: {error}" if stage else error))
    return JobOutcome(session.job.id, session.dir.root, status, error, stage, stages)
