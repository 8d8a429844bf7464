"""The retry policy: what a failed attempt means, and how long to wait before the next.

Transient errors are retried with exponential backoff up to the stage's `RetryPolicy`;
timeouts only when the stage says so; permanent errors (everything the pipeline raises
knowingly) never; a lost worker (a node died, an actor restarted) has its own, more patient
budget, since the cluster needs tens of seconds to place the work elsewhere. Nothing here
knows how attempts run.
"""

from __future__ import annotations

import errno
import logging
import traceback

from bolly_ray.core.wire import AttemptPlan
from bolly_ray.errors import (
    BollyRayError,
    StageTimeoutError,
    TransientStageError,
    WorkerLostError,
)
from bolly_ray.spec import RetryPolicy

log = logging.getLogger(__name__)

MAX_WORKER_LOSS_BACKOFF_S = 30.0


def classify(plan: AttemptPlan, err: BaseException) -> tuple[str, bool]:
    """(one-line message, whether a retry may help)."""
    if isinstance(err, TransientStageError):
        return str(err), True
    if isinstance(err, StageTimeoutError):
        return str(err), plan.spec.retry.retry_timeouts
    if isinstance(err, BollyRayError):
        return str(err), False
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = f" ({err.filename})" if err.filename else ""
        return (f"{plan.stage}: no space left on device{where}; free space and rerun to "
                "resume"), False
    log.debug("%s crashed:\n%s", plan.stage, "".join(traceback.format_exception(err)))
    return f"{plan.stage} crashed: {type(err).__name__}: {err}", False


def retry_delay(policy: RetryPolicy, attempt: int, losses: int, error: BaseException
                ) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when the budget is spent;
    `losses`: how many earlier attempts died with their worker."""
    if isinstance(error, WorkerLostError):
        if losses >= policy.worker_losses:
            return None
        return float(min(MAX_WORKER_LOSS_BACKOFF_S, policy.worker_loss_backoff_s * 2 ** losses))
    failures = attempt - losses
    if failures >= policy.max_attempts:
        return None
    return float(policy.backoff_s * 2 ** (failures - 1))
