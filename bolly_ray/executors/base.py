"""The executor template: preflight, run, publish, report; and the policy every executor shares.

`Executor.run` validates every job before anything starts (all problems of all jobs at once),
lets the subclass start its backend, then drives all jobs together: a stage starts as soon
as the stages it reads from have finished, so stages of different jobs (and independent
stages of one job) overlap wherever the backend has room. The policy lives here once:
skip disabled stages, reuse cached outputs, retry transient errors with backoff, fail
permanent errors at once, go on after optional failures, stop a job after a critical one.
Subclasses only say how an attempt is submitted and how finished attempts are collected.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bolly_ray.container import ContainerRunner, docker_client, reap
from bolly_ray.doctor import missing_libraries
from bolly_ray.driver import (
    AttemptOutcome,
    AttemptPlan,
    JobSession,
    Selection,
    final_status,
    folder_id,
)
from bolly_ray.errors import (
    BollyRayError,
    PreflightError,
    StageTimeoutError,
    TransientStageError,
    UsageError,
    WorkerLostError,
)
from bolly_ray.events import JobEvent, Observers, StageEvent
from bolly_ray.fitting import Hardware, fit, fits_to_hardware
from bolly_ray.hardware import profile_here
from bolly_ray.images import resolve_images
from bolly_ray.job import JobBase
from bolly_ray.joblog import job_logs, working_for
from bolly_ray.manifest import JobStatus, StageStatus
from bolly_ray.registry import Registry
from bolly_ray.spec import ComputeKind

log = logging.getLogger(__name__)

Finished = tuple[Hashable, AttemptOutcome | BaseException]


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
    running: set[str] = field(default_factory=set)
    failed: tuple[str, str] | None = None


class Executor(ABC):
    def __init__(self, registry: Registry, observers: Observers | None = None,
                 cpu_stages: str = "native", gpu_stages: str = "native") -> None:
        self.registry = registry
        self.observers = observers or Observers()
        self.in_docker = {kind for kind, where in ((ComputeKind.CPU, cpu_stages),
                                                   (ComputeKind.GPU, gpu_stages))
                          if where == "docker"}
        self.containers: ContainerRunner | None = None
        self._failed_submits: list[Finished] = []

    def run(self, jobs: Sequence[JobBase], selection: Selection | None = None
            ) -> list[JobOutcome]:
        try:  # the preflight may join a cluster to see its hardware: _stop leaves it
            sessions = self.preflight(jobs, selection or Selection())
            if self.in_docker:
                self.containers = container_runner(sessions, self.registry, self.in_docker)
            self._start(sessions)
            with job_logs([(s.job.id, s.dir.logs / "run.log") for s in sessions]):
                return self._drive(sessions)
        finally:
            self._stop()

    def preflight(self, jobs: Sequence[JobBase], selection: Selection) -> list[JobSession]:
        sessions, problems = [], []
        for job in jobs:
            try:
                sessions.append(JobSession(job, self.registry, selection))
            except UsageError as err:
                problems.append(f"job {job.id}: {err}")
        problems += [problem for s in sessions for problem in self._bad_inputs(s)]
        if problems:
            raise UsageError("\n".join(problems))
        self._fit_settings(sessions)
        missing = self._missing_models(sessions, problems)
        if problems:
            raise UsageError("\n".join(problems))
        if missing:
            raise PreflightError("missing models:\n  " + "\n  ".join(sorted(missing)))
        native = {name for kind in ComputeKind if kind not in self.in_docker
                  for name in selected_of_kind(sessions, self.registry, kind)}
        missing = missing_libraries(self.registry, native)
        if missing:
            raise UsageError("missing libraries for native stages:\n  " + "\n  ".join(missing))
        return sessions

    def _bad_inputs(self, session: JobSession) -> list[str]:
        """Files the job brings that a stage it runs would refuse (one line each)."""
        problems = []
        for artifact, path in session.job.artifacts.items():
            for name in session.selected:
                spec = self.registry[name].spec
                if artifact not in (*spec.inputs, *spec.optional_inputs):
                    continue
                problem = self.registry[name].check_input(artifact, path)
                if problem:
                    problems.append(f"job {session.job.id}: artifacts.{artifact}: {problem}")
                    break
        return problems

    def _fit_settings(self, sessions: list[JobSession]) -> None:
        """Each stage's `auto` settings fitted to the hardware that will host it, before
        models are checked and cache keys made; what was chosen is logged once per stage."""
        fitting = [(s, name) for s in sessions for name in s.selected
                   if fits_to_hardware(self.registry[name])]
        if not fitting:
            return
        hardware = self._hardware(sessions)
        told: set[str] = set()
        for session, name in fitting:
            stage, settings = self.registry[name], session.settings(name)
            fitted, chosen = fit(stage, settings, hardware.host_for(stage, settings))
            session.fit(name, fitted, chosen)
            if chosen and chosen["why"] not in told:
                told.add(chosen["why"])
                log.info("%s: %s", name, chosen["why"])

    def _missing_models(self, sessions: list[JobSession], problems: list[str]) -> set[str]:
        """Models that required stages lack (all of them, for one message). A stage the job
        does not need, or an optional one whose model is missing, is marked to be skipped,
        with the reason."""
        missing: set[str] = set()
        for session in sessions:
            for name in session.selected:
                settings = session.settings(name)
                try:  # a stage's model setting can be wrong (no such folder)
                    self.registry[name].model_id(settings)
                except UsageError as err:
                    problems.append(f"job {session.job.id}: {err}")
                    continue
                if session.is_disabled(name):
                    continue
                stage, facts = self.registry[name], session.job_facts(name)
                idle = stage.not_needed(settings, facts)
                if idle:
                    session.unavailable[name] = idle
                    continue
                lacking = stage.missing_models(settings) if stage.needs_models(
                    settings, facts) else []
                if lacking and session.is_critical(name):
                    missing.update(lacking)
                elif lacking:
                    session.unavailable[name] = "; ".join(lacking)
                    log.warning("%s: %s will be skipped: %s", session.job.id, name,
                                session.unavailable[name])
        return missing

    # -- what a backend provides ----------------------------------------------------------

    def _hardware(self, sessions: list[JobSession]) -> Hardware:
        """What the stages will run on: this machine (a cluster's executor says more)."""
        profile = profile_here(sessions[0].job.out_root)
        return Hardware(profile, float(len(profile.gpus)))

    def _start(self, sessions: list[JobSession]) -> None:  # noqa: B027 - optional hook
        """Connect to the backend and check the jobs fit it (before any stage starts)."""

    def _stop(self) -> None:  # noqa: B027 - optional hook
        """Release what `_start` took."""

    def _save_trace(self, sessions: list[JobSession]) -> None:  # noqa: B027 - optional hook
        """Leave the backend's own timeline of the run in each job's logs, if it keeps one."""

    def _gpus_available(self) -> float:
        """GPUs where attempts run: they decide what a GPU-kind stage set to auto reserves."""
        return 0.0

    def _can_submit(self) -> bool:
        """Whether the backend takes another attempt now (Ray queues; local runs one)."""
        return True

    @abstractmethod
    def _submit(self, plan: AttemptPlan, scratch: Path) -> Hashable:
        """Start one attempt; return a handle `_collect` will report it under."""

    @abstractmethod
    def _collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]:
        """Wait until at least one attempt finished (or `timeout` passed) and report them."""

    # -- the loop -------------------------------------------------------------------------

    def _drive(self, sessions: list[JobSession]) -> list[JobOutcome]:
        outcomes: dict[str, JobOutcome] = {}
        jobs = [JobProgress(s, list(s.selected)) for s in sessions if self._open(s, outcomes)]
        flights: dict[Hashable, Flight] = {}
        retries: list[tuple[float, Flight]] = []
        try:
            self._loop(jobs, flights, retries)
        finally:
            self._save_trace([job.session for job in jobs])
            for job in jobs:
                outcomes[job.session.job.id] = self._close(job)
        return [outcomes[s.job.id] for s in sessions]

    def _loop(self, jobs: list[JobProgress], flights: dict[Hashable, Flight],
              retries: list[tuple[float, Flight]]) -> None:
        while True:
            for job in jobs:
                with working_for(job.session.job.id):
                    self._start_ready(job, flights)
            now = time.monotonic()
            for due, flight in [r for r in retries if r[0] <= now]:
                retries.remove((due, flight))
                self._launch(flight, flights)
            if not flights and not retries:
                return
            timeout = max(0.0, min(d for d, _ in retries) - now) if retries else None
            finished, self._failed_submits = self._failed_submits, []
            if not finished and flights:
                finished = self._collect(list(flights), timeout)
            elif not finished:  # only retries are waiting: sleep until the first is due
                time.sleep(timeout or 0.0)
            for handle, result in finished:
                flight = flights.pop(handle)
                with working_for(flight.plan.job_id):
                    self._finish(flight, result, jobs, retries)

    def _open(self, session: JobSession, outcomes: dict[str, JobOutcome]) -> bool:
        try:
            session.open()
        except BollyRayError as err:
            outcomes[session.job.id] = JobOutcome(session.job.id, session.dir.root,
                                                  JobStatus.FAILED, str(err))
            self.observers.emit(JobEvent(session.job.id, JobStatus.FAILED.value,
                                         job_dir=str(session.dir.root), message=str(err)))
            return False
        self.observers.emit(JobEvent(session.job.id, "running", tuple(session.selected),
                                     str(session.dir.root)))
        if self.containers is not None:  # we hold the job's lock: leftovers are orphans
            removed = self._reap(folder_id(session.dir.root))
            if removed:
                log.warning("%s: removed %d container(s) an earlier run left behind",
                            session.job.id, removed)
        return True

    def _start_ready(self, job: JobProgress, flights: dict[Hashable, Flight]) -> None:
        for stage in list(job.waiting):
            if job.failed is not None or not self._can_submit():
                return
            upstream = set(job.session.pipeline.upstream(stage))
            if upstream & (set(job.waiting) | job.running):
                continue
            job.waiting.remove(stage)
            error = self._begin(job, stage, flights)
            if error and job.session.is_critical(stage):
                job.failed = (stage, error)

    def _begin(self, job: JobProgress, stage: str, flights: dict[Hashable, Flight]) -> str | None:
        """Skip, fail, reuse or launch one stage; returns an error when it failed at once."""
        session, job_id = job.session, job.session.job.id
        reason = session.skip_reason(stage)
        if reason:
            session.mark_skipped(stage, reason)
            self._emit(job_id, stage, StageStatus.SKIPPED, message=reason)
            return None
        blocked = session.blocked_by(stage)
        if blocked:
            message = f"inputs not available: {', '.join(blocked)}"
            session.mark_failed(stage, message)
            self._emit(job_id, stage, StageStatus.FAILED, message=message)
            return message
        plan = session.plan(stage, self._runtime(stage), self._gpus_available())
        if session.is_cached(plan):
            session.mark_cached(stage)
            self._emit(job_id, stage, StageStatus.CACHED)
            return None
        job.running.add(stage)
        self._launch(Flight(session, plan, 1, time.monotonic()), flights)
        return None

    def _launch(self, flight: Flight, flights: dict[Hashable, Flight]) -> None:
        session, plan = flight.session, flight.plan
        session.mark_running(plan.stage, flight.attempt)
        self._emit(plan.job_id, plan.stage, StageStatus.RUNNING, attempt=flight.attempt,
                   runner=self._runner(plan))
        scratch = flight.scratch = session.dir.new_scratch(plan.stage, flight.attempt)
        try:
            handle = self._submit(plan, scratch)
        except Exception as err:  # a submission that fails is a failed attempt
            handle = ("failed-submit", id(flight))
            self._failed_submits.append((handle, err))
        flights[handle] = flight

    def _finish(self, flight: Flight, result: AttemptOutcome | BaseException,
                jobs: list[JobProgress], retries: list[tuple[float, Flight]]) -> None:
        job = next(j for j in jobs if j.session is flight.session)
        plan = flight.plan
        if isinstance(result, AttemptOutcome):
            try:
                flight.session.publish(plan, result, flight.started)
            except Exception as err:
                result = err
        if isinstance(result, AttemptOutcome):
            job.running.discard(plan.stage)
            audio = result.metrics.get("audio_s")
            self._emit(plan.job_id, plan.stage, StageStatus.SUCCEEDED, attempt=flight.attempt,
                       runner=result.runner, node=result.node_ip,
                       duration_s=time.monotonic() - flight.started,
                       audio_s=float(audio) if audio is not None else None)
            return
        if isinstance(result, KeyboardInterrupt | SystemExit):
            raise result
        if flight.scratch is not None:  # a failed attempt's leftovers: free the space now
            shutil.rmtree(flight.scratch, ignore_errors=True)
        error, retry = self._classify(plan, result)
        delay = self._retry_delay(flight, result) if retry else None
        if delay is not None:
            log.warning("%s: %s attempt %d failed, retrying in %.1f s: %s", plan.job_id,
                        plan.stage, flight.attempt, delay, error)
            lost = isinstance(result, WorkerLostError)
            retries.append((time.monotonic() + delay, Flight(
                flight.session, plan, flight.attempt + 1, flight.started,
                flight.losses + lost)))
            return
        job.running.discard(plan.stage)
        flight.session.mark_failed(plan.stage, error)
        self._emit(plan.job_id, plan.stage, StageStatus.FAILED, attempt=flight.attempt,
                   runner=self._runner(plan), duration_s=time.monotonic() - flight.started,
                   message=error)
        if flight.session.is_critical(plan.stage) and job.failed is None:
            job.failed = (plan.stage, error)

    def _close(self, job: JobProgress) -> JobOutcome:
        session = job.session
        status = final_status(session, session.selected)
        session.close(status)
        stages = {name: r.status.value for name, r in session.manifest.stages.items()}
        stage, error = job.failed if job.failed else (None, None)
        self.observers.emit(JobEvent(session.job.id, status.value, job_dir=str(session.dir.root),
                                     message=f"{stage}: {error}" if error else None))
        return JobOutcome(session.job.id, session.dir.root, status, error, stage, stages)

    def _reap(self, job_folder: str) -> int:
        """Remove the job folder's leftover stage containers wherever they can be (here:
        this host)."""
        return reap(docker_client(), {job_folder})

    def _runner(self, plan: AttemptPlan) -> str:
        """Where an attempt of this stage runs, as the manifest will name it."""
        return "docker" if self._runtime(plan.stage) else "local"

    def _runtime(self, stage: str) -> str | None:
        """What the stage runs in, when that is part of its cache key (a container image)."""
        if self.containers is not None and stage in self.containers.images:
            return f"docker:{self.containers.images[stage]}"
        return None

    @staticmethod
    def _retry_delay(flight: Flight, error: BaseException) -> float | None:
        """Seconds to wait before the next attempt, or None when the budget is spent."""
        policy = flight.plan.spec.retry
        if isinstance(error, WorkerLostError):
            if flight.losses >= policy.worker_losses:
                return None
            return min(30.0, policy.worker_loss_backoff_s * 2 ** flight.losses)
        failures = flight.attempt - flight.losses
        if failures >= policy.max_attempts:
            return None
        return policy.backoff_s * 2 ** (failures - 1)

    @staticmethod
    def _classify(plan: AttemptPlan, err: BaseException) -> tuple[str, bool]:
        """(one-line message, whether a retry may help)."""
        if isinstance(err, TransientStageError):
            return str(err), True
        if isinstance(err, StageTimeoutError):
            return str(err), plan.spec.retry.retry_timeouts
        if isinstance(err, BollyRayError):
            return str(err), False
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            where = f" ({err.filename})" if err.filename else ""
            return (f"{plan.stage}: no space left on device{where}; free space and rerun to "
                    "resume"), False
        log.debug("%s crashed:\n%s", plan.stage, "".join(traceback.format_exception(err)))
        return f"{plan.stage} crashed: {type(err).__name__}: {err}", False

    def _emit(self, job_id: str, stage: str, status: StageStatus, **kw: object) -> None:
        self.observers.emit(StageEvent(job_id=job_id, stage=stage, status=status, **kw))



def selected_of_kind(sessions: list[JobSession], registry: Registry, kind: ComputeKind
                     ) -> set[str]:
    """Every stage of this compute kind that some job of the run will run."""
    return {name for s in sessions for name in s.selected
            if registry[name].spec.compute == kind}


def container_runner(sessions: list[JobSession], registry: Registry,
                     kinds: set[ComputeKind]) -> ContainerRunner:
    """Images for every stage of these kinds the jobs will run (a stage every job skips
    needs none); all missing ones named at once."""
    running = {name for s in sessions for name in s.selected if not s.skip_reason(name)}
    wanted = {kind: selected_of_kind(sessions, registry, kind) & running for kind in kinds}
    images = resolve_images(docker_client(), wanted.get(ComputeKind.CPU, set()),
                            wanted.get(ComputeKind.GPU, set()))
    return ContainerRunner(images, keep=os.environ.get("BOLLY_RAY_KEEP_CONTAINERS") == "1")
