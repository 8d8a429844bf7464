"""The errors a request can cause, each answered with its HTTP status and a one-line reason."""

from __future__ import annotations

from bolly_ray.errors import BollyRayError


class BadRequest(BollyRayError):
    """The request itself is wrong (an empty file, an unknown language, a path outside the
    allowed roots): 4xx, nothing queued, nothing kept."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
