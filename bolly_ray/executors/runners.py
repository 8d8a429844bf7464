"""Attempt runners: what one attempt of a stage runs in, chosen per stage.

As Hamilton's `get_executor_for_task` picks an executor per node, an executor picks a runner
per stage: in this process (`local`), a Ray task (`task`), the warm actor pool of the
stage's model (`actor`), or the stage's container (`docker`), which one of the others
starts (a Ray task on a cluster, this process in a local run). The runner is what the
manifest records, and a container's image is part of the attempt's cache key: the same
stage in another image is another result.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RunnerName(StrEnum):
    LOCAL = "local"
    TASK = "task"
    ACTOR = "actor"
    DOCKER = "docker"


@dataclass(frozen=True)
class Runner:
    name: RunnerName
    image: str | None = None
    """The container image's id, for the `docker` runner."""

    @property
    def identity(self) -> str | None:
        """What the attempt runs in, when the cache key must name it (a container image)."""
        return f"docker:{self.image}" if self.image else None
