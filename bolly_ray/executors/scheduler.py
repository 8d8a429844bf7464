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
import threading
import time

from bolly_ray.engine.events import JobEvent, Observers
from bolly_ray.engine.joblog import close_job_log, open_job_log, working_for
from bolly_ray.engine.manifest import JobStatus, StageStatus
from bolly_ray.engine.session import JobSession, final_status
from bolly_ray.errors import BollyRayError
from bolly_ray.executors.attempts import Attempts
from bolly_ray.executors.run_state import (
    Backend,
    Finished,
    Flight,
    JobOutcome,
    JobProgress,
    RunState,
)

log = logging.getLogger(__name__)

__all__ = ["Backend", "Finished", "Inbox", "JobOutcome", "Scheduler"]


Command = tuple[str, JobSession | str | None]


class Inbox:
    """What reaches a running scheduler from other threads: jobs, cancellations, the end."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._open: set[str] = set()
        self._lock = threading.Lock()

    def submit(self, session: JobSession) -> None:
        """Run this job (preflighted) as soon as the backend has room."""
        with self._lock:
            self._open.add(session.job.id)
        self.queue.put(("submit", session))

    def cancel(self, job_id: str) -> None:
        """Start no more stages of the job; attempts already running finish."""
        self.queue.put(("cancel", job_id))

    def close(self) -> None:
        """No more jobs: `drive` returns once the submitted ones have ended."""
        self.queue.put(("close", None))

    def open_jobs(self) -> set[str]:
        """Ids of the jobs submitted and not ended yet (queued or running)."""
        with self._lock:
            return set(self._open)

    def ended(self, job_id: str) -> None:
        with self._lock:
            self._open.discard(job_id)


class Scheduler:
    def __init__(self, backend: Backend, observers: Observers) -> None:
        self.backend = backend
        self.observers = observers
        self.state = RunState()
        self.attempts = Attempts(backend, observers, self.state)
        self.inbox = Inbox()
        self.outcomes: dict[str, JobOutcome] = {}
        self._accepting = True
        self._order: list[str] = []
        self._ended: list[JobSession] = []
        """Jobs closed since the scheduler was last idle, for the backend's `ended`."""

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
                self._retry(flight)
            for job in [j for j in self.state.jobs.values() if j.ended()]:
                self._close(job)
            if self.state.idle() and not self.state.jobs:
                self._idle()
                if not self._accepting:
                    return
                continue
            self.attempts.collect(self._accepting)

    def _take(self, block: bool) -> None:
        """Everything the intake holds; with `block`, wait for the first of it."""
        while True:
            try:
                kind, value = self.inbox.queue.get(block=block)
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
        self.outcomes.pop(job_id, None)  # an earlier run of the same job
        refused = open_job(session, self.observers)
        if refused is not None:
            self._ended_job(job_id, refused)
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
            self._ended_job(job_id, close_job(job, self.observers))
        finally:
            self.backend.closed(job.session)
            self._ended.append(job.session)
            if job.log is not None:
                close_job_log(job.log)

    def _ended_job(self, job_id: str, outcome: JobOutcome) -> None:
        self.outcomes[job_id] = outcome
        self.inbox.ended(job_id)

    def _retry(self, flight: Flight) -> None:
        """A retry that came due: launched, unless its job was cancelled meanwhile."""
        job = self.state.jobs[flight.plan.job_id]
        if not job.cancelled:
            self.attempts.launch(flight)
            return
        job.running.discard(flight.plan.stage)
        flight.session.book.failed(flight.plan.stage, "cancelled")
        self.attempts.emit(flight.plan.job_id, flight.plan.stage, StageStatus.FAILED,
                           attempt=flight.attempt - 1, message="cancelled")

    def _idle(self) -> None:
        """Nothing runs: the backend may do its per-run work for the jobs that ended."""
        ended, self._ended = self._ended, []
        if ended:
            self.backend.ended(ended)

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
            self.attempts.emit(job_id, stage, StageStatus.SKIPPED, message=reason)
            return None
        blocked = session.blocked_by(stage)
        if blocked:
            message = f"inputs not available: {', '.join(blocked)}"
            session.book.failed(stage, message)
            self.attempts.emit(job_id, stage, StageStatus.FAILED, message=message)
            return message
        plan = self.backend.plan(session, stage)
        if session.is_cached(plan):
            session.book.cached(stage)
            self.attempts.emit(job_id, stage, StageStatus.CACHED)
            return None
        job.running.add(stage)
        self.attempts.launch(Flight(session, plan, 1, time.monotonic()))
        return None


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
