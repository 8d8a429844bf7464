"""What the service's jobs are doing now: an observer of the executor's events.

It keeps each job's recent events (for the progress stream) and which stages run on which
node (for the status page). Memory stays bounded in a long-running service: a job's events
are capped, and only the most recent jobs keep theirs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import asdict
from typing import Any

from bolly_ray.engine.events import JobEvent, StageEvent
from bolly_ray.engine.manifest import StageStatus

EVENTS_PER_JOB = 200
JOBS_KEPT = 500


class Activity:
    def __init__(self) -> None:
        self._events: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self._running: dict[tuple[str, str], str] = {}
        """(job, stage) -> the node it runs on."""
        self._lock = threading.Lock()

    def on_job(self, event: JobEvent) -> None:
        self._add(event.job_id, {"event": "job", **asdict(event)})
        if event.status != "running":
            with self._lock:
                for key in [k for k in self._running if k[0] == event.job_id]:
                    del self._running[key]

    def on_stage(self, event: StageEvent) -> None:
        self._add(event.job_id, {"event": "stage", **asdict(event),
                                 "status": event.status.value})
        with self._lock:
            key = (event.job_id, event.stage)
            if event.status == StageStatus.RUNNING:
                self._running[key] = event.node or "?"
            else:
                self._running.pop(key, None)

    def events(self, job_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The job's events from number `after` on (numbered from 0 as they came)."""
        with self._lock:
            kept = list(self._events.get(job_id, ()))
        return [e for e in kept if e["n"] >= after]

    def running(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"job": job, "stage": stage, "node": node}
                    for (job, stage), node in sorted(self._running.items())]

    def _add(self, job_id: str, record: dict[str, Any]) -> None:
        with self._lock:
            events = self._events.setdefault(job_id, deque(maxlen=EVENTS_PER_JOB))
            self._events.move_to_end(job_id)
            record["n"] = events[-1]["n"] + 1 if events else 0
            events.append(record)
            while len(self._events) > JOBS_KEPT:
                self._events.popitem(last=False)
