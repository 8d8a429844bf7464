"""How close the Ray executor packs a batch of jobs to the best possible schedule.

Synthetic stages of known cost (they sleep) form each job's chain: `prep` (CPU, reads the
media), `asr` (GPU kind, one fake GPU each), `post` (CPU). N jobs run as one batch on an
embedded Ray with fake GPUs; then the same N jobs run one after another. Reported:
  makespan / lower bound, where lower bound = max(total GPU work / GPUs, longest job chain),
  and the speedup of the batch over the jobs one at a time. The batch pays for a cold
  start (Ray's first worker processes, the actors' start) and Ray's timeline at the end;
  the same N jobs submitted to a warm intake (`Executor.intake()`, as a service runs it,
  after it served one job per GPU) show the scheduler's own cost.
Run: `.venv/bin/python bench/bench_scheduling.py --jobs 8 --gpus 2`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import ray
from pydantic import Field

from bolly_ray.core.job import validate_job
from bolly_ray.engine.registry import Registry, build_registry
from bolly_ray.executors import JobIntake
from bolly_ray.executors.ray_executor import RayExecutor
from bolly_ray.spec import (
    ComputeKind,
    Locality,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)

# Shaped like a film: demux takes seconds, GPU transcription dominates, subtitles are quick.
COSTS = {"prep": 0.5, "asr": 6.0, "post": 0.2}


class SleepSettings(StageSettings):
    seconds: float = Field(default=0.0, ge=0)


class SleepStage(Stage[SleepSettings]):
    def run(self, ctx: StageContext[SleepSettings], model: object = None) -> StageResult:
        time.sleep(ctx.settings.seconds)
        name = self.spec.outputs[0]
        (ctx.out_dir / name).write_text(ctx.stage)
        return StageResult(outputs={name: name})


class Prep(SleepStage):
    spec = StageSpec(name="prep", inputs=("media",), outputs=("audio",),
                     settings_model=SleepSettings, locality=Locality.SOURCE,
                     resources=Resources(cpus=1, memory_mb=64))


class Asr(SleepStage):
    spec = StageSpec(name="asr", inputs=("audio",), outputs=("text",),
                     settings_model=SleepSettings, compute=ComputeKind.GPU,
                     resources=Resources(cpus=1, gpus=1, memory_mb=64))


class Post(SleepStage):
    spec = StageSpec(name="post", inputs=("text",), outputs=("subs",),
                     settings_model=SleepSettings, resources=Resources(cpus=1, memory_mb=64))


def make_jobs(root: Path, count: int, tag: str) -> list:
    media = root / "film.txt"
    media.write_text("film")
    specs = [Prep.spec, Asr.spec, Post.spec]
    return [validate_job({"id": f"{tag}-{n}", "media": str(media), "out_root": str(root),
                          "stages": {s: {"seconds": c} for s, c in COSTS.items()}},
                         specs, "bench") for n in range(count)]


def warm_intake_makespan(registry: Registry, root: Path, count: int, gpus: int) -> float:
    """Seconds from submitting `count` jobs to a warm intake until the last one ended; it
    is warm once it has served one job per GPU at once (a pool grows with the jobs)."""
    intake = RayExecutor(registry).intake()
    try:
        warmup = make_jobs(root, gpus, "warmup")
        for job in warmup:
            intake.submit(job)
        wait_for(intake, [job.id for job in warmup])
        jobs = make_jobs(root, count, "warm")
        started = time.perf_counter()
        for job in jobs:
            intake.submit(job)
        wait_for(intake, [job.id for job in jobs])
        return time.perf_counter() - started
    finally:
        outcomes = intake.close()
        assert all(o.status == "succeeded" for o in outcomes), outcomes


def wait_for(intake: JobIntake, job_ids: list[str]) -> None:
    while any(intake.outcome(job_id) is None for job_id in job_ids):
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=args.cpus, num_gpus=args.gpus, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    registry = build_registry([Prep, Asr, Post])
    with tempfile.TemporaryDirectory(prefix="bench-sched-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        outcomes = RayExecutor(registry).run(make_jobs(root, args.jobs, "batch"))
        makespan = time.perf_counter() - started
        started = time.perf_counter()
        for job in make_jobs(root, args.jobs, "serial"):
            RayExecutor(registry).run([job])
        serial = time.perf_counter() - started
        warm = warm_intake_makespan(registry, root, args.jobs, args.gpus)
    ray.shutdown()
    assert all(o.status == "succeeded" for o in outcomes)
    bound = max(args.jobs * COSTS["asr"] / args.gpus, sum(COSTS.values()))
    print(json.dumps({
        "jobs": args.jobs, "gpus": args.gpus, "cpus": args.cpus, "stage_costs_s": COSTS,
        "lower_bound_s": bound, "makespan_s": round(makespan, 2),
        "makespan_over_bound": round(makespan / bound, 3),
        "one_after_another_s": round(serial, 2), "speedup": round(serial / makespan, 2),
        "warm_intake_makespan_s": round(warm, 2),
        "warm_intake_over_bound": round(warm / bound, 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}, Ray {ray.__version__}"}, indent=2))


if __name__ == "__main__":
    main()
