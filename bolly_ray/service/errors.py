"""What a request is answered instead of its result: an HTTP status and a one-line reason."""

from __future__ import annotations

from bolly_ray.errors import BollyRayError


class RequestError(BollyRayError):
    """A request answered with something other than its result, with the HTTP status: the
    request was wrong (4xx: an empty file, an unknown language, a path outside the allowed
    roots; nothing queued, nothing kept), or its job failed or is still running (5xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
