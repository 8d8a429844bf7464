"""Feeds the service's queue to one running executor and records how each job ends.

The executor runs for the service's whole life (its GPU actors stay warm between requests)
and takes jobs through its streaming intake. A thread moves queued rows into it, oldest
first, at most `max_active` at a time (a library of a thousand films waits in the queue,
not in the scheduler's memory); the executor's job events mark them ended. A row is marked
running before its job is handed over, so a job that ends at once (every stage cached)
cannot be overtaken by its own start; a hand-over and a cancel never interleave, so a job
cancelled while the thread was taking it is not run. A job the executor refuses (bad media,
a stage the cluster cannot host) ends failed with that one-line reason. Stopping leaves
running jobs as they are: the next start queues them again and they resume from their
manifests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.events import JobEvent, LoggingObserver, Observers
from bolly_ray.engine.manifest import JobStatus
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import BollyRayError
from bolly_ray.executors import Executor, JobIntake
from bolly_ray.service.activity import Activity
from bolly_ray.service.delivery import deliver
from bolly_ray.service.queue import JobQueue, JobRow, RowStatus

log = logging.getLogger(__name__)

POLL_S = 1.0


class Dispatcher:
    def __init__(self, queue: JobQueue, registry: Registry,
                 executor_for: Callable[[Observers], Executor],
                 selection: Selection | None = None, max_active: int = 32) -> None:
        self.queue, self.registry = queue, registry
        self.max_active = max_active
        self.activity = Activity()
        self.executor = executor_for(Observers([self, self.activity, LoggingObserver()]))
        self.selection = selection or Selection()
        self._intake: JobIntake | None = None
        self._cancelled: set[str] = set()
        self._handing = threading.Lock()  # a hand-over and a cancel, one at a time
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="bolly-ray-dispatch",
                                        daemon=True)

    def start(self) -> None:
        resumed = self.queue.requeue_running()
        if resumed:
            log.info("resuming %d job(s) a stopped service left running: %s", len(resumed),
                     ", ".join(resumed))
        self._intake = self.executor.intake(self.selection)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def poke(self) -> None:
        """A job was queued: hand it over now rather than at the next poll."""
        self._wake.set()

    def cancel(self, job_id: str) -> JobRow | None:
        with self._handing:
            row = self.queue.get(job_id)
            if row is None or row.status.ended:
                return row
            self._cancelled.add(job_id)
            if row.status == RowStatus.QUEUED:
                self.queue.ended(job_id, RowStatus.CANCELLED, "cancelled")
            elif self._intake is not None:
                self._intake.cancel(job_id)
        return self.queue.get(job_id)

    # -- the executor's events ----------------------------------------------------------------

    def on_job(self, event: JobEvent) -> None:
        if event.status == "running":
            return
        error = event.message
        if event.job_id in self._cancelled:
            status = RowStatus.CANCELLED
        elif event.status == JobStatus.SUCCEEDED.value:
            status, error = RowStatus.SUCCEEDED, self._deliver(event.job_id, event.job_dir)
            if error is not None:
                status = RowStatus.FAILED
        else:
            status = RowStatus.FAILED
        self.queue.ended(event.job_id, status, error, event.job_dir)
        log.info("job %s %s", event.job_id, status.value)
        self._wake.set()  # room for a queued job

    def _deliver(self, job_id: str, job_dir: str | None) -> str | None:
        """Subtitles beside the film, when the request asked for them; what went wrong."""
        row = self.queue.get(job_id)
        film = row.request.get("next_to") if row is not None else None
        if not film or job_dir is None:
            return None
        try:
            written = deliver(Path(film), Path(job_dir))
        except OSError as err:
            log.warning("job %s: subtitles not written beside %s: %s", job_id, film, err)
            return f"writing subtitles beside the film: {err}"
        log.info("job %s: %s", job_id, ", ".join(p.name for p in written) or "nothing new")
        return None

    # -- the feeding thread -------------------------------------------------------------------

    def _feed(self) -> None:
        while not self._stopping.is_set():
            room = self.max_active - len(self.queue.with_status(RowStatus.RUNNING))
            for row in self.queue.with_status(RowStatus.QUEUED)[:max(room, 0)]:
                if self._stopping.is_set():
                    return
                self._hand_over(row)
            self._wake.wait(POLL_S)
            self._wake.clear()

    def _hand_over(self, row: JobRow) -> None:
        with self._handing:
            current = self.queue.get(row.id)
            if current is not None and current.status == RowStatus.QUEUED:  # not cancelled
                self._submit(current)

    def _submit(self, row: JobRow) -> None:
        assert self._intake is not None  # started before this thread
        self._cancelled.discard(row.id)  # asked again after a cancel: this run is wanted
        self.queue.started(row.id)
        try:
            job = validate_job(row.job, self.registry.specs, row.id)
            self._intake.submit(job)
        except BollyRayError as err:
            self.queue.ended(row.id, RowStatus.FAILED, str(err))
            log.warning("job %s refused: %s", row.id, err)
        except Exception as err:  # the executor itself broke: say so on the job, keep serving
            self.queue.ended(row.id, RowStatus.FAILED, f"{type(err).__name__}: {err}")
            log.exception("job %s could not start", row.id)
