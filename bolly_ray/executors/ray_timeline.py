"""Ray's timeline of a run, left in each job's logs, written off the scheduler's path.

`ray.timeline()` asks the GCS for every task event it keeps: about a second on two cores,
and more the longer the cluster has run (a service's Ray runs for months; the GCS keeps up
to `RAY_task_events_max_num_task_in_gcs` tasks). So each job gets only the events that end
after it was admitted, and the query runs on a thread of its own while the scheduler starts
the next jobs' stages; `flush` waits for what is pending (before Ray shuts down).
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ray

from bolly_ray.core.files import write_atomic
from bolly_ray.engine.report import RAY_TIMELINE
from bolly_ray.engine.session import JobSession

log = logging.getLogger(__name__)


class TimelineWriter:
    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bolly-ray-timeline")
        self._admitted: dict[Path, float] = {}
        self._pending: list[Future[None]] = []

    def admitted(self, sessions: list[JobSession]) -> None:
        now = time.time()
        for session in sessions:
            self._admitted.setdefault(session.dir.root, now)

    def save(self, sessions: list[JobSession]) -> None:
        """Each job's events since its admission into its logs, soon (see `flush`)."""
        since = {session.dir.logs / RAY_TIMELINE: self._admitted.pop(session.dir.root, 0.0)
                 for session in sessions}
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._thread.submit(write_timelines, since))

    def flush(self) -> None:
        """Wait until every timeline asked for is written."""
        for pending in self._pending:
            pending.result()
        self._pending = []


def write_timelines(since: dict[Path, float]) -> None:
    """Ray's events into each file, those ending after its time (seconds since the epoch);
    a diagnostic, so a failure is logged, never raised."""
    events = ray_events()
    if events is None:
        return
    for path, start in since.items():
        after_us = start * 1e6
        mine = [e for e in events if e.get("ts", after_us) + e.get("dur", 0) >= after_us]
        write_atomic(path, json.dumps(mine))


def ray_events() -> list[dict[str, Any]] | None:
    state_log = logging.getLogger("ray._private.state")  # warns of a future change each call
    level = state_log.level
    state_log.setLevel(logging.ERROR)
    try:
        return list(ray.timeline())
    except Exception as err:  # a diagnostic: never worth failing a finished job over
        log.debug("no Ray timeline: %s", err)
        return None
    finally:
        state_log.setLevel(level)
