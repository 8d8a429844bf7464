"""The docker runner: each attempt of a stage in its stage's image, wrapping another runner.

The stages of the kinds a run puts in containers (`--cpu-stages docker`, `--gpu-stages
docker`) run in their images; what starts the container is the executor's own runner: this
process in a local run, a Ray task on a cluster (started on a node with the GPUs Ray granted
it, which the container then gets by id). The images are resolved as jobs are admitted
(every missing one named at once), and an image's id is the runner's identity in the
attempt's cache key: the same stage in another image is another result. Containers a
crashed run of a job left are removed when the job's lock is taken again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bolly_ray.core.hardware import local_gpus
from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import JobSession
from bolly_ray.executors.preflight import selected_of_kind
from bolly_ray.runtime.containers import StageContainers, docker_client, reap
from bolly_ray.runtime.image_names import resolve_images
from bolly_ray.spec import ComputeKind, Stage


class DockerRunner:
    def __init__(self, kinds: frozenset[ComputeKind]) -> None:
        self.kinds = kinds
        self.containers = StageContainers(
            {}, keep=os.environ.get("BOLLY_RAY_KEEP_CONTAINERS") == "1")

    def admit(self, sessions: list[JobSession], registry: Registry) -> None:
        """Images for every stage of these kinds the jobs will run (a stage every job skips
        needs none); all missing ones named at once."""
        running = {name for s in sessions for name in s.selected if not s.skip_reason(name)}
        wanted = {kind: selected_of_kind(sessions, registry, kind) & running
                  for kind in self.kinds}
        self.containers.images.update(resolve_images(
            docker_client(), wanted.get(ComputeKind.CPU, set()),
            wanted.get(ComputeKind.GPU, set())))

    def image(self, stage: str) -> str | None:
        """The image id the stage's attempts run in; None where the stage runs natively."""
        return self.containers.images.get(stage)

    def run_here(self, stage: Stage[Any], plan: AttemptPlan, scratch: Path) -> AttemptOutcome:
        """One attempt in its container on this host, with this host's GPUs if it asks."""
        gpus = local_gpus() if plan.resources.gpus > 0 else ()
        return self.containers(stage, plan, scratch, gpus)


def reap_here(job_folder: str) -> int:
    """Remove this host's leftover stage containers of a job folder; how many."""
    return reap(docker_client(), {job_folder})
