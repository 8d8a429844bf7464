"""The executor: a backend for the scheduler, and the run's frame around it.

`Executor.run` checks every job first (the preflight: all problems of all jobs at once),
lets the subclass start its backend, hands the jobs to the scheduler, and stops the backend
whatever happened. Subclasses say how an attempt is submitted and how finished ones are
collected; the scheduling loop, its run state and the retry policy live in their own
modules (scheduler, policy) and know nothing of Ray or Docker.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from pathlib import Path

from bolly_ray.core.fitting import Hardware
from bolly_ray.core.hardware import profile_here
from bolly_ray.core.job import JobBase, RunnerKind
from bolly_ray.core.wire import AttemptPlan, Selection, folder_id
from bolly_ray.engine.events import Observers
from bolly_ray.engine.joblog import debug_records
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import JobSession
from bolly_ray.errors import UsageError
from bolly_ray.executors.docker_runner import DockerRunner, reap_here
from bolly_ray.executors.preflight import Preflight
from bolly_ray.executors.runners import Runner, RunnerName
from bolly_ray.executors.scheduler import Finished, JobOutcome, Scheduler
from bolly_ray.spec import ComputeKind

log = logging.getLogger(__name__)

__all__ = ["Executor", "Finished", "JobIntake", "JobOutcome"]


class JobIntake:
    """A running scheduler fed one job at a time: `submit` checks a job as a batch would
    (raising the same errors) and queues it; `close` waits for every job to end. An error
    that stops the scheduler's thread is raised again by the next `submit` or `close`."""

    def __init__(self, executor: Executor, selection: Selection) -> None:
        self.executor, self.selection = executor, selection
        self.scheduler = Scheduler(executor, executor.observers)
        try:
            executor._start()
        except BaseException:
            executor._stop()
            raise
        self._thread = threading.Thread(target=self._drive, name="bolly-ray-scheduler",
                                        daemon=True)
        self._outcomes: list[JobOutcome] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # one submission at a time, none after close
        self._closed = False
        self._thread.start()

    def _drive(self) -> None:
        try:
            with debug_records():
                self._outcomes = self.scheduler.drive()
        except BaseException as err:  # raised again in the caller's thread
            self._error = err

    def submit(self, job: JobBase) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise UsageError("the job intake is closed")
            if job.id in self.scheduler.inbox.open_jobs():
                raise UsageError(f"job {job.id} is running already")
            sessions = self.executor.preflight([job], self.selection)
            self.executor.admit(sessions)
            self.scheduler.inbox.submit(sessions[0])

    def cancel(self, job_id: str) -> None:
        self.scheduler.inbox.cancel(job_id)

    def outcome(self, job_id: str) -> JobOutcome | None:
        """How the job ended, or None while it runs (or was never submitted)."""
        return self.scheduler.outcomes.get(job_id)

    def close(self) -> list[JobOutcome]:
        """Take no more jobs, wait for the submitted ones, stop the backend."""
        with self._lock:
            self._closed = True
        self.scheduler.inbox.close()
        try:
            self._thread.join()
        finally:
            self.executor._stop()
        if self._error is not None:
            raise self._error
        return self._outcomes


class Executor(ABC):
    def __init__(self, registry: Registry, observers: Observers | None = None,
                 cpu_stages: RunnerKind = RunnerKind.NATIVE,
                 gpu_stages: RunnerKind = RunnerKind.NATIVE) -> None:
        self.registry = registry
        self.observers = observers or Observers()
        self.in_docker = frozenset(kind for kind, where in ((ComputeKind.CPU, cpu_stages),
                                                            (ComputeKind.GPU, gpu_stages))
                                   if where == RunnerKind.DOCKER)
        self.docker = DockerRunner(self.in_docker) if self.in_docker else None

    def run(self, jobs: Sequence[JobBase], selection: Selection | None = None
            ) -> list[JobOutcome]:
        """A batch: every job checked before any starts, all run together, all ended."""
        try:  # the preflight may join a cluster to see its hardware: _stop leaves it
            sessions = self.preflight(jobs, selection or Selection())
            self._start()
            self.admit(sessions)
            scheduler = Scheduler(self, self.observers)
            for session in sessions:
                scheduler.inbox.submit(session)
            scheduler.inbox.close()
            with debug_records():
                return scheduler.drive()
        finally:
            self._stop()

    def intake(self, selection: Selection | None = None) -> JobIntake:
        """Start the backend and a scheduler that takes jobs while it runs (a service's)."""
        return JobIntake(self, selection or Selection())

    def preflight(self, jobs: Sequence[JobBase], selection: Selection) -> list[JobSession]:
        return Preflight(self.registry, self.in_docker, self._hardware).check(
            jobs, selection).sessions

    def admit(self, sessions: list[JobSession]) -> None:
        """Prepare the backend for these preflighted jobs (their stages' images, pools);
        what they need that it cannot give is refused here, before any of them starts."""
        if self.docker is not None:
            self.docker.admit(sessions, self.registry)

    # -- what the scheduler asks (bolly_ray.executors.scheduler.Backend) -------------------

    def plan(self, session: JobSession, stage: str) -> AttemptPlan:
        return session.plan(stage, self.runner_for(stage).identity, self._gpus_available())

    def runner(self, plan: AttemptPlan) -> str:
        """Where an attempt of this stage runs, as the manifest will name it."""
        return self.runner_for(plan.stage).name.value

    def runner_for(self, stage: str) -> Runner:
        """The stage's container where its kind runs in containers, else the backend's
        own runner for it."""
        image = self.docker.image(stage) if self.docker is not None else None
        if image is not None:
            return Runner(RunnerName.DOCKER, image)
        return Runner(self._native_runner(stage))

    def opened(self, session: JobSession) -> None:
        """The job's lock is held: containers an earlier run of it left are orphans."""
        if self.docker is None:
            return
        removed = self._reap(folder_id(session.dir.root))
        if removed:
            log.warning("%s: removed %d container(s) an earlier run left behind",
                        session.job.id, removed)

    def closed(self, session: JobSession) -> None:  # noqa: B027 - optional hook
        """The job ended: what the backend holds for it alone may go (a service runs on)."""

    def ended(self, sessions: list[JobSession]) -> None:
        """These jobs ended and nothing runs now (a batch's end; a service's quiet moment)."""
        self._save_trace(sessions)

    def can_submit(self) -> bool:
        """Whether the backend takes another attempt now (Ray queues; local runs one)."""
        return True

    @abstractmethod
    def submit(self, plan: AttemptPlan, scratch: Path) -> Hashable:
        """Start one attempt; return a handle `collect` will report it under."""

    @abstractmethod
    def collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]:
        """Wait until at least one attempt finished (or `timeout` passed) and report them."""

    # -- what a backend may add ---------------------------------------------------------------

    def _hardware(self, sessions: list[JobSession]) -> Hardware:
        """What the stages will run on: this machine (a cluster's executor says more)."""
        profile = profile_here(sessions[0].job.out_root)
        return Hardware(profile, float(len(profile.gpus)))

    def _gpus_available(self) -> float:
        """GPUs where attempts run: they decide what a GPU-kind stage set to auto reserves."""
        return 0.0

    def _start(self) -> None:  # noqa: B027 - optional hook
        """Connect to the backend (before any job is admitted)."""

    def _stop(self) -> None:  # noqa: B027 - optional hook
        """Release what `_start` took."""

    def _save_trace(self, sessions: list[JobSession]) -> None:  # noqa: B027 - optional hook
        """Leave the backend's own timeline of the run in each job's logs, if it keeps one."""

    def _reap(self, job_folder: str) -> int:
        """Remove the job folder's leftover stage containers wherever they can be (here:
        this host)."""
        return reap_here(job_folder)

    def _native_runner(self, stage: str) -> RunnerName:
        """What runs the stage's attempts outside a container."""
        return RunnerName.LOCAL

