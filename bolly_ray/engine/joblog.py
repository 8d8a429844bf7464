"""Each job's own log file, even when several jobs run at once in one process.

A context variable names the job the current code works for; every job's `logs/run.log`
handler keeps only records made while its job was current. Threads that run a stage start
from a copy of the caller's context, so a stage's log lines land in its job's file too.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CURRENT_JOB: contextvars.ContextVar[str | None] = contextvars.ContextVar("bolly_job", default=None)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _JobFilter(logging.Filter):
    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def filter(self, record: logging.LogRecord) -> bool:
        return CURRENT_JOB.get() == self.job_id


@contextmanager
def working_for(job_id: str) -> Iterator[None]:
    token = CURRENT_JOB.set(job_id)
    try:
        yield
    finally:
        CURRENT_JOB.reset(token)


def open_job_log(job_id: str, path: Path) -> logging.Handler:
    """A debug-level file handler on the `bolly_ray` logger for one job's records."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_JobFilter(job_id))
    logging.getLogger("bolly_ray").addHandler(handler)
    return handler


def close_job_log(handler: logging.Handler) -> None:
    logging.getLogger("bolly_ray").removeHandler(handler)
    handler.close()


@contextmanager
def debug_records() -> Iterator[None]:
    """The `bolly_ray` logger passes debug records on (to the job logs) while it lasts."""
    logger = logging.getLogger("bolly_ray")
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(previous)
