"""Running one attempt of one stage, wherever that happens.

The same function serves the local executor, a Ray task and a Ray actor: it builds the
`StageContext`, runs the stage in a worker thread so that a timeout can be enforced, and
turns the stage's result into an `AttemptOutcome`. An attempt that runs past its timeout is
abandoned; it can only ever write into its own scratch folder, which nobody publishes.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from pathlib import Path
from typing import Any

from bolly_ray.driver import AttemptOutcome, AttemptPlan
from bolly_ray.errors import StageTimeoutError
from bolly_ray.spec import Stage, StageContext


def run_attempt(stage: Stage, plan: AttemptPlan, scratch: Path, model: Any = None,
                runner: str = "local") -> AttemptOutcome:
    timeout = plan.spec.timeout_s
    ctx = StageContext(stage=plan.stage, settings=plan.settings, inputs=dict(plan.inputs),
                       out_dir=scratch, job=dict(plan.job_facts),
                       deadline=time.monotonic() + timeout,
                       log=logging.getLogger(f"bolly_ray.stage.{plan.stage}"))
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"stage-{plan.stage}")
    future = pool.submit(stage.run, ctx, model)
    try:
        result = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise StageTimeoutError(f"{plan.stage}: ran past its timeout of {timeout:g} s") from None
    finally:
        pool.shutdown(wait=False)
    return AttemptOutcome(scratch=scratch, outputs=dict(result.outputs),
                          metrics=dict(result.metrics), runner=runner)
