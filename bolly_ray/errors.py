"""Error types and the exit codes they map to.

Errors a user can cause (a bad job file, unreadable media, a wrong setting) carry a one-line
message and are printed without a traceback. Stage errors say whether a retry can help:
`TransientStageError` is retried under the stage's retry policy, everything else fails the
attempt at once.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class BollyRayError(Exception):
    """Base class: an error with a one-line message meant for the user."""

    exit_code = EXIT_FAILED


class UsageError(BollyRayError):
    """Bad command-line usage, an invalid job file or invalid settings."""

    exit_code = EXIT_USAGE


class JobLockedError(BollyRayError):
    """Another live process is running the same job."""


class PreflightError(BollyRayError):
    """The jobs cannot run here as things are (no GPU, a missing model); nothing started."""


class StageError(BollyRayError):
    """A stage attempt failed permanently: bad media, bad settings, a bug."""


class MediaError(StageError):
    """The input media cannot be processed (no audio, truncated, unreadable)."""


class TransientStageError(StageError):
    """A failure a retry may cure: a lost worker, a killed container, GPU OOM."""


class WorkerLostError(TransientStageError):
    """The worker, node or actor running an attempt went away; the stage itself is fine."""


class StageTimeoutError(StageError):
    """A stage attempt ran past its timeout."""
