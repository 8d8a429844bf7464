"""`POST /asr` and `POST /detect-language`, as Bazarr and whisper-asr-webservice clients call them.

The upload is read to the end and stored before anything else happens (Bazarr gives up on
a server that stops reading its upload for 5 s), then the request becomes a job, joins an
identical one when there is one, and waits for it. The answer carries the job's id and how
it was served (`X-Bolly-Ray-Served: run`, `joined` or `cached`) in headers.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile

from bolly_ray.service.bazarr import (
    DETECT_WINDOW_S,
    MEDIA_TYPES,
    AsrAsk,
    Output,
    Task,
    detection_answer,
    render,
    transcript_of,
)
from bolly_ray.service.context import Service, service_of
from bolly_ray.service.errors import RequestError
from bolly_ray.service.queue import JobRow, RowStatus
from bolly_ray.service.uploads import store_upload
from bolly_ray.stages.support.media import ffmpeg_input, run_tool

log = logging.getLogger(__name__)

router = APIRouter()


@router.post("/asr")
async def asr(request: Request, task: str = "transcribe", language: str | None = None,
              output: str = "txt", encode: bool = True, vad_filter: bool | None = None,
              word_timestamps: bool = False, video_file: str | None = None) -> Response:
    service = service_of(request)
    ask = AsrAsk.parse(task, language, output, encode, vad_filter, word_timestamps)
    media = await _stored_audio(request, service, ask.encode)
    log.info("asr: %s %s of %s", ask.task.value, ask.language or "auto", video_file or media.name)
    planned = service.factory.make("asr", media, media.stem, ask.fields(), ask.overrides())
    row, fresh = service.submit(planned, {"output": ask.output.value})
    done = await _finished(service, row)
    text = await run_in_threadpool(render, Path(done.job_dir), ask)
    return PlainTextResponse(text, media_type=MEDIA_TYPES[ask.output],
                             headers=_served(row, fresh))


@router.post("/detect-language")
async def detect_language(request: Request, encode: bool = True,
                          video_file: str | None = None) -> Response:
    service = service_of(request)
    media = await _stored_audio(request, service, encode)
    opening = await run_in_threadpool(first_seconds, media, DETECT_WINDOW_S)
    ask = AsrAsk(Task.TRANSCRIBE, None, Output.JSON, encode)
    planned = service.factory.make("detect", opening, opening.stem, ask.fields(),
                                   ask.overrides())
    row, fresh = service.submit(planned)
    done = await _finished(service, row)
    heard = await run_in_threadpool(transcript_of, Path(done.job_dir), None)
    return JSONResponse(detection_answer(heard.language), headers=_served(row, fresh))


async def _stored_audio(request: Request, service: Service, encode: bool) -> Path:
    form = await request.form(max_files=1, max_fields=16)
    upload = form.get("audio_file")
    if not isinstance(upload, UploadFile):
        raise RequestError("audio_file is missing: send the audio as the multipart form file "
                           "audio_file")
    try:
        return await run_in_threadpool(store_upload, upload.file, service.settings.uploads,
                                       not encode, upload.filename or "")
    finally:
        await form.close()


async def _finished(service: Service, row: JobRow) -> JobRow:
    done = await service.finished(row.id, service.settings.request_timeout_s)
    if done.status == RowStatus.SUCCEEDED:
        return done
    if not done.status.ended:
        raise RequestError(f"job {row.id} is still running after "
                           f"{service.settings.request_timeout_s:g} s; ask again to wait for the "
                           "same job", status=504)
    never_started = not (Path(done.job_dir) / "manifest.json").is_file()
    raise RequestError(f"job {row.id} {done.status.value}: {done.error}",
                       status=422 if never_started else 500)


def _served(asked: JobRow, fresh: bool) -> dict[str, str]:
    """`asked` is the row as the request found it: done already, or queued or running."""
    how = "run" if fresh else "cached" if asked.status == RowStatus.SUCCEEDED else "joined"
    return {"X-Bolly-Ray-Job": asked.id, "X-Bolly-Ray-Served": how}


def first_seconds(media: Path, seconds: float) -> Path:
    """The first `seconds` of the audio as 16 kHz mono WAV beside it (kept: it is named by
    the upload's hash, so the same upload finds it again)."""
    clip = media.with_name(f"{media.stem}.first{seconds:g}s.wav")
    if not clip.is_file():
        with tempfile.TemporaryDirectory(dir=media.parent, prefix=".cut-") as tmp:
            partial = Path(tmp) / clip.name  # two requests for one upload may cut at once
            run_tool(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", ffmpeg_input(media),
                      "-t", f"{seconds:g}", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                      "file:" + str(partial)], timeout_s=300,
                     what=f"{media.name}: cutting audio")
            partial.replace(clip)
    return clip
