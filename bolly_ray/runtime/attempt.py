"""Running one attempt of one stage, wherever that happens.

The same function serves the local executor, a Ray task and a Ray actor: it builds the
`StageContext`, runs the stage in a daemon thread so that a timeout can be enforced, and
turns the stage's result into an `AttemptOutcome`. An attempt that runs past its timeout is
abandoned (a daemon thread never holds the process open); it can only ever write into its
own scratch folder, which nobody publishes.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from pathlib import Path
from typing import Any

from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.errors import StageTimeoutError
from bolly_ray.spec import Stage, StageContext, StageResult


def run_attempt(stage: Stage[Any], plan: AttemptPlan, scratch: Path, model: Any = None,
                runner: str = "local") -> AttemptOutcome:
    timeout = plan.spec.timeout_s
    ctx = StageContext(stage=plan.stage, settings=plan.settings, inputs=dict(plan.inputs),
                       out_dir=scratch, job=dict(plan.job_facts),
                       deadline=time.monotonic() + timeout,
                       log=logging.getLogger(f"bolly_ray.stage.{plan.stage}"),
                       secrets=plan.secrets)
    result = _run_with_timeout(stage, ctx, model, timeout)
    return AttemptOutcome(scratch=scratch, outputs=dict(result.outputs),
                          metrics=dict(result.metrics), runner=runner)


def _run_with_timeout(stage: Stage[Any], ctx: StageContext[Any], model: Any, timeout: float
                      ) -> StageResult:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = stage.run(ctx, model)
        except BaseException as err:  # handed to the caller's thread below
            box["error"] = err

    context = contextvars.copy_context()  # the job's log file follows the stage's thread
    thread = threading.Thread(target=context.run, args=(work,), name=f"stage-{ctx.stage}",
                              daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise StageTimeoutError(f"{ctx.stage}: ran past its timeout of {timeout:g} s")
    if "error" in box:
        raise box["error"]
    result: StageResult = box["result"]
    return result
