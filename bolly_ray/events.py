"""Typed events a run emits, and the observers that listen.

Progress display, logging and (later) metrics and timelines are observers: the executor
emits `StageEvent`s and never prints. Observers take keyword-only arguments and ignore
fields they do not know, so new fields never break them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bolly_ray.manifest import StageStatus

log = logging.getLogger("bolly_ray.run")


@dataclass(frozen=True)
class StageEvent:
    job_id: str
    stage: str
    status: StageStatus
    attempt: int = 0
    runner: str | None = None
    duration_s: float | None = None
    message: str | None = None


class Observer(Protocol):
    def on_stage(self, event: StageEvent) -> None: ...


class LoggingObserver:
    """Writes each event to the `bolly_ray.run` logger."""

    def on_stage(self, event: StageEvent) -> None:
        extra = f" ({event.message})" if event.message else ""
        took = f" in {event.duration_s:.1f} s" if event.duration_s is not None else ""
        log.info("%s: %s %s%s%s", event.job_id, event.stage, event.status.value, took, extra)


class Observers:
    def __init__(self, observers: list[Observer] | None = None) -> None:
        self._observers = list(observers or [])

    def emit(self, event: StageEvent) -> None:
        for observer in self._observers:
            observer.on_stage(event)
