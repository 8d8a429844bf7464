"""The HTTP application of `bolly-ray serve`: FastAPI routes over one long-running executor.

Why FastAPI and uvicorn in the driver rather than Ray Serve: the service is one queue and
one scheduler feeding Ray, not a model to replicate; the driver process already owns the
streaming intake and the warm GPU actor pools, and Ray Serve would add a proxy actor per
node, a second controller and an HTTP hop between the request and the queue that decides
its fate, for no gain in throughput (the work is done by the stage actors, which Ray
places across the cluster either way). The routes are mounted twice: at `/` behind the
bearer token, and under `/t/<token>/` for clients that cannot send headers (Bazarr,
browsers). Every error a request can cause is a JSON answer `{"error": "<one line>"}` with
its 4xx status; request bodies over the upload limit are cut off with 413 while they arrive.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from bolly_ray import __version__
from bolly_ray.service import routes_bazarr, routes_hooks, routes_jobs, status_page
from bolly_ray.service.auth import require_bearer, require_path_token
from bolly_ray.service.body_limit import BodyLimit
from bolly_ray.service.context import Service
from bolly_ray.service.errors import RequestError

log = logging.getLogger(__name__)

TOKEN_IN_PATH = re.compile(r"^/t/[^/]*/")
ROUTERS = (routes_bazarr.router, routes_jobs.router, routes_hooks.router, status_page.router)


class Background(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def create_app(service: Service, background: Sequence[Background] = ()) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.dispatcher.start()
        for task in background:
            task.start()
        try:
            yield
        finally:  # running jobs stay running: the next start resumes them
            for task in background:
                task.stop()
            service.dispatcher.stop()

    app = FastAPI(title="bolly-ray", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=service.settings.max_upload_bytes)
    app.middleware("http")(_log_request)
    app.add_api_route("/status", status, methods=["GET"])
    for prefix, check in (("", require_bearer), ("/t/{token}", require_path_token)):
        routes = APIRouter(prefix=prefix, dependencies=[Depends(check)])
        for router in ROUTERS:
            routes.include_router(router)
        app.include_router(routes)
    app.add_exception_handler(RequestError, _bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(ValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    return app


async def status(request: Request) -> dict[str, Any]:
    """Open to all (Bazarr's connection test): the version and the queue's size only."""
    service: Service = request.app.state.service
    return {"version": f"bolly-ray {__version__}", "queue": service.queue.counts()}


async def _log_request(request: Request, call_next: Any) -> Any:
    started = time.monotonic()
    answer = await call_next(request)
    path = TOKEN_IN_PATH.sub("/t/***/", request.url.path)  # the token is a secret
    log.info("%s %s -> %d in %.2f s", request.method, path, answer.status_code,
             time.monotonic() - started)
    return answer


async def _bad_request(request: Request, err: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=err.status)


async def _invalid(request: Request, err: RequestValidationError | ValidationError
                   ) -> JSONResponse:
    return JSONResponse({"error": one_line(err.errors())}, status_code=422)


async def _http_error(request: Request, err: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(err.detail)}, status_code=err.status_code)


def one_line(errors: Any) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "invalid request"
