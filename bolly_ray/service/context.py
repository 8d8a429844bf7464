"""What every route of the service shares: its settings, queue, dispatcher and job factory.

`Service.submit` is the one way a request becomes work: the planned job goes into the
queue (or joins the identical one there) and the dispatcher is woken. `Service.finished`
waits for a job without holding a server thread, so thousands of clients may wait at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from bolly_ray.service.delivery import deliver
from bolly_ray.service.dispatcher import Dispatcher
from bolly_ray.service.errors import RequestError
from bolly_ray.service.job_factory import JobFactory, PlannedJob
from bolly_ray.service.queue import JobQueue, JobRow, RowStatus
from bolly_ray.service.settings import ServiceSettings

WAIT_STEP_S = 0.2
MANIFEST = "manifest.json"
log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: ServiceSettings
    queue: JobQueue
    dispatcher: Dispatcher
    factory: JobFactory

    def submit(self, planned: PlannedJob, request: dict[str, Any] | None = None
               ) -> tuple[JobRow, bool]:
        """The job's row, and whether it was queued now (False: it joined an identical one)."""
        job_dir = str(planned.job.job_dir())
        row, fresh = self.queue.enqueue(planned.id, planned.kind, planned.json,
                                        request or {}, job_dir)
        if row.status == RowStatus.SUCCEEDED and not (Path(row.job_dir) / MANIFEST).is_file():
            log.warning("job %s: its folder is gone; running it again", row.id)
            row, fresh = self.queue.requeue(row.id) or row, True
        if fresh:
            self.dispatcher.poke()
        return row, fresh

    def film_job(self, film: Path, fields: dict[str, Any], overrides: list[str]) -> PlannedJob:
        """A job for a film on this machine; its identity is its path, size and mtime (a
        film is not read whole to hash it: that is demux's work, on a worker)."""
        stat = film.stat()
        identity = f"{film}:{stat.st_size}:{stat.st_mtime_ns}"
        return self.factory.make("film", film, identity, fields, overrides)

    def subtitle_film(self, film: Path, fields: dict[str, Any] | None = None,
                      overrides: list[str] | None = None) -> tuple[JobRow, bool]:
        """Subtitles for a film, written beside it when its job ends (at once when an
        identical job has ended already)."""
        planned = self.film_job(film, fields or {}, ["mux.enabled=false", *(overrides or [])])
        row, fresh = self.submit(planned, {"next_to": str(film)})
        if row.status == RowStatus.SUCCEEDED:
            deliver(film, Path(row.job_dir))
        return row, fresh

    async def finished(self, job_id: str, timeout: float) -> JobRow:
        deadline = time.monotonic() + timeout
        while True:
            row = self.queue.get(job_id)
            if row is None:
                raise RequestError(f"no job {job_id}", status=404)
            if row.status.ended or time.monotonic() >= deadline:
                return row
            await asyncio.sleep(WAIT_STEP_S)

    def row(self, job_id: str) -> JobRow:
        row = self.queue.get(job_id)
        if row is None:
            raise RequestError(f"no job {job_id}", status=404)
        return row

    def allowed_path(self, given: str) -> Path:
        """A path a client named, if it lies under an allowed root (symlinks resolved)."""
        path = Path(given).expanduser().resolve()
        roots = self.settings.allowed_roots
        if not any(path.is_relative_to(root) for root in roots):
            where = ", ".join(map(str, roots)) or "none configured (serve --root DIR)"
            raise RequestError(f"{given}: not under an allowed root ({where})", status=403)
        if not path.is_file():
            raise RequestError(f"{given}: no such file", status=404)
        return path


def service_of(request: Request) -> Service:
    found: Service = request.app.state.service
    return found
