"""Typed events a run emits, and the observers that listen.

Progress display, logging and JSON event streams are observers: the executor emits
`JobEvent`s and `StageEvent`s and never prints. An observer implements the handlers it
cares about (`on_job`, `on_stage`); new event fields never break one.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from bolly_ray.engine.manifest import StageStatus

log = logging.getLogger("bolly_ray.run")


@dataclass(frozen=True)
class JobEvent:
    """A job opened (`status` "running", with the stages it will run) or closed."""

    job_id: str
    status: str
    stages: tuple[str, ...] = ()
    job_dir: str | None = None
    message: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class StageEvent:
    job_id: str
    stage: str
    status: StageStatus
    attempt: int = 0
    runner: str | None = None
    node: str | None = None
    duration_s: float | None = None
    audio_s: float | None = None
    message: str | None = None
    at: float = field(default_factory=time.time)


Event = JobEvent | StageEvent


class LoggingObserver:
    """Writes each stage event to the `bolly_ray.run` logger (plain output for logs and CI)."""

    def on_stage(self, event: StageEvent) -> None:
        extra = f" ({event.message})" if event.message else ""
        took = f" in {event.duration_s:.1f} s" if event.duration_s is not None else ""
        where = f" on {event.node}" if event.node else ""
        runner = f" [{event.runner}]" if event.runner and event.duration_s is not None else ""
        log.info("%s: %s %s%s%s%s%s", event.job_id, event.stage, event.status.value, took,
                 where, runner, extra)


class JsonLinesObserver:
    """One JSON object per event and line, for scripts that follow a run as it goes."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def on_job(self, event: JobEvent) -> None:
        self._write({"event": "job", **asdict(event)})

    def on_stage(self, event: StageEvent) -> None:
        self._write({"event": "stage", **asdict(event), "status": event.status.value})

    def _write(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()


class Observers:
    def __init__(self, observers: list[object] | None = None) -> None:
        self._observers = list(observers or [])

    def emit(self, event: Event) -> None:
        handler = "on_job" if isinstance(event, JobEvent) else "on_stage"
        for observer in self._observers:
            method = getattr(observer, handler, None)
            if method is not None:
                method(event)
