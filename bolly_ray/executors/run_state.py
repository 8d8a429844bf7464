"""What the scheduler knows mid-run, and what it asks of the backend that runs attempts.

`RunState` holds the open jobs (`JobProgress`: stages waiting and running, whether a
critical one failed or the job was cancelled), the attempts in flight (`Flight`) and the
retries due. `Backend` is all the scheduler sees of an executor; `JobOutcome` is how a job
ended.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.engine.manifest import JobStatus
from bolly_ray.engine.session import JobSession

Finished = tuple[Hashable, AttemptOutcome | BaseException]


class Backend(Protocol):
    """Where attempts run (in this process, on Ray), as the scheduler sees it."""

    def can_submit(self) -> bool: ...
    def submit(self, plan: AttemptPlan, scratch: Path) -> Hashable: ...
    def collect(self, handles: list[Hashable], timeout: float | None) -> list[Finished]: ...
    def plan(self, session: JobSession, stage: str) -> AttemptPlan: ...
    def runner(self, plan: AttemptPlan) -> str: ...
    def opened(self, session: JobSession) -> None: ...
    def closed(self, session: JobSession) -> None: ...
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
