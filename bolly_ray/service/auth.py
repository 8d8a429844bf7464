"""Bearer-token checks for the service's routes.

Every route but `GET /status` asks for `Authorization: Bearer <token>` when a token is set.
Bazarr's Whisper provider sends no headers at all, so the Bazarr routes are also served
under `/t/<token>/`: Bazarr's endpoint setting becomes `http://host:9000/t/<token>`, and its
"Test" button, which keeps only host and port, reaches the open `/status`. Comparisons are
constant-time; the token never appears in a log or an answer.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from bolly_ray.service.context import service_of
from bolly_ray.service.errors import RequestError


def require_bearer(request: Request) -> None:
    expected = service_of(request).settings.token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _same(given.strip(), expected.get_secret_value()):
        raise RequestError("missing or wrong bearer token (send Authorization: Bearer <token>)",
                           status=401)


def require_path_token(request: Request, token: str) -> None:
    expected = service_of(request).settings.token
    if expected is None or not _same(token, expected.get_secret_value()):
        raise RequestError("wrong token in the path", status=401)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
