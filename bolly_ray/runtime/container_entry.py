"""What runs inside a stage container: one attempt, described by a request file.

`python -m bolly_ray.runtime.container_entry /io/request.json` reads the stage name, its settings,
the job facts and the input paths (as mounted), runs the stage through `run_attempt` with
`/out/files` as its output folder, and writes `/out/result.json` (outputs and metrics) or
`/out/error.json` (the error's type and one-line message). No Ray, no network needed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bolly_ray.core.secrets import Secrets
from bolly_ray.core.wire import AttemptPlan
from bolly_ray.engine.registry import default_registry
from bolly_ray.errors import BollyRayError
from bolly_ray.runtime.attempt import run_attempt

OUT = Path("/out")


def main(request_path: str) -> int:
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    try:
        stage = default_registry()[request["stage"]]
        settings = stage.spec.settings_model.model_validate(request["settings"])
        secrets_file = request.get("secrets_file")
        secrets = (Secrets(**json.loads(Path(secrets_file).read_text())) if secrets_file
                   else Secrets())
        plan = AttemptPlan(job_id=request["job_id"], stage=stage.spec.name, spec=stage.spec,
                           settings=settings,
                           inputs={k: Path(v) for k, v in request["inputs"].items()},
                           job_facts=request["job_facts"], key="", secrets=secrets)
        files = OUT / "files"
        files.mkdir()
        started = time.monotonic()
        outcome = run_attempt(stage, plan, files, runner="docker")
    except Exception as err:  # reported to the driver, which decides about retries
        kind = type(err).__name__ if isinstance(err, BollyRayError) else "crash"
        message = str(err) if isinstance(err, BollyRayError) else f"{type(err).__name__}: {err}"
        (OUT / "error.json").write_text(json.dumps({"type": kind, "message": message}))
        return 1
    (OUT / "result.json").write_text(json.dumps({
        "outputs": outcome.outputs, "metrics": outcome.metrics,
        "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
