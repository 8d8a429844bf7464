"""The jobs API: submit a film (a path under an allowed root, or an upload), list, look at,
cancel, download outputs, and follow progress as server-sent events.

`POST /jobs` answers 202 with the job (200 when an identical job is queued, running or done
already: it is that job); its folder is the contract's job folder under the service's
state directory. Downloads are confined to the job's folder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile

from bolly_ray.service.context import Service, service_of
from bolly_ray.service.errors import RequestError
from bolly_ray.service.uploads import store_upload

router = APIRouter(prefix="/jobs")

EVENT_POLL_S = 0.5


class FilmRequest(BaseModel):
    """A film named by its path on the service's machine (under an allowed root)."""

    model_config = ConfigDict(extra="forbid")

    path: str = ""
    source_language: str | None = None
    target_languages: list[str] | None = None
    title: str | None = None
    year: int | None = None
    settings: list[str] = Field(default_factory=list,
                                description="STAGE.KEY=VALUE settings, as `--set` takes them")
    subtitles_next_to_film: bool = False
    """Also write `Film.<lang>.srt` beside the film (as watch folders do)."""


def film_fields(ask: FilmRequest) -> dict[str, Any]:
    given = {"source_language": ask.source_language, "target_languages": ask.target_languages,
             "title": ask.title, "year": ask.year}
    return {k: v for k, v in given.items() if v is not None}


@router.post("")
async def submit_film(request: Request, ask: FilmRequest) -> JSONResponse:
    service = service_of(request)
    if not ask.path:
        raise RequestError("path is missing: name the film (or POST it to /jobs/upload)")
    film = service.allowed_path(ask.path)
    if ask.subtitles_next_to_film:
        return _submitted(service, *service.subtitle_film(film, film_fields(ask), ask.settings))
    planned = service.film_job(film, film_fields(ask), ask.settings)
    return _submitted(service, *service.submit(planned))


@router.post("/upload")
async def submit_upload(request: Request) -> JSONResponse:
    service = service_of(request)
    form = await request.form(max_files=1, max_fields=16)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise RequestError("file is missing: send the film as the multipart form file file")
        options = form.get("options")
        ask = FilmRequest.model_validate_json(options if isinstance(options, str) else "{}")
        stored = await run_in_threadpool(store_upload, upload.file, service.settings.uploads,
                                         False, upload.filename or "")
    finally:
        await form.close()
    # the stored file is named by its content hash: that is the film's identity
    planned = service.factory.make("film", stored, stored.stem, film_fields(ask), ask.settings)
    return _submitted(service, *service.submit(planned))


def _submitted(service: Service, row: Any, fresh: bool) -> JSONResponse:
    return JSONResponse(service.row(row.id).public(), status_code=202 if fresh else 200)


@router.get("")
async def list_jobs(request: Request, limit: int = 50) -> dict[str, Any]:
    service = service_of(request)
    rows = service.queue.recent(min(max(limit, 1), 500))
    return {"counts": service.queue.counts(), "running": service.dispatcher.activity.running(),
            "jobs": [{**row.public(), "files": _files(Path(row.job_dir))} for row in rows]}


@router.get("/{job_id}")
async def job_status(request: Request, job_id: str) -> dict[str, Any]:
    service = service_of(request)
    row = service.row(job_id)
    return {**row.public(), "files": _files(Path(row.job_dir)),
            "running": [r for r in service.dispatcher.activity.running() if r["job"] == job_id]}


@router.post("/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> dict[str, Any]:
    service = service_of(request)
    service.row(job_id)
    row = await run_in_threadpool(service.dispatcher.cancel, job_id)
    assert row is not None  # it existed a moment ago; rows are never deleted
    return row.public()


@router.get("/{job_id}/files/{name:path}")
async def download(request: Request, job_id: str, name: str) -> FileResponse:
    folder = Path(service_of(request).row(job_id).job_dir).resolve()
    target = (folder / name).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        raise RequestError(f"job {job_id} has no file {name}", status=404)
    return FileResponse(target, filename=target.name)


@router.get("/{job_id}/events")
async def events(request: Request, job_id: str) -> StreamingResponse:
    service = service_of(request)
    service.row(job_id)
    return StreamingResponse(_event_stream(request, service, job_id),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


async def _event_stream(request: Request, service: Service, job_id: str
                        ) -> AsyncIterator[str]:
    sent = 0
    while not await request.is_disconnected():
        for event in service.dispatcher.activity.events(job_id, after=sent):
            sent = event["n"] + 1
            yield f"id: {event['n']}\nevent: {event['event']}\ndata: {json.dumps(event)}\n\n"
        row = service.row(job_id)
        if row.status.ended:
            yield f"event: end\ndata: {json.dumps(row.public())}\n\n"
            return
        await asyncio.sleep(EVENT_POLL_S)


def _files(folder: Path) -> list[str]:
    wanted = [folder / "manifest.json", *sorted((folder / "subtitles").glob("*")),
              *sorted((folder / "logs").glob("*.png"))]
    return [str(p.relative_to(folder)) for p in wanted if p.is_file()]
