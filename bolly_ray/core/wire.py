"""The wire types: what the driver hands an executor for one attempt, and what comes back.

They cross process and machine boundaries (pickled to Ray workers, written as JSON for a
stage container), so they hold plain data only and import nothing of the job folder, the
lock or the manifest: code that runs an attempt needs this module and the stage, no more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bolly_ray.core.secrets import Secrets
from bolly_ray.spec import Resources, StageSpec


@dataclass(frozen=True)
class Selection:
    only: tuple[str, ...] = ()
    start: str | None = None
    force: bool = False


def folder_id(job_dir: Path) -> str:
    """A short, stable name for a job folder (its resolved path, hashed)."""
    return hashlib.sha256(str(job_dir.resolve()).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AttemptPlan:
    """What an executor needs to run one stage of one job."""

    job_id: str
    stage: str
    spec: StageSpec
    settings: Any
    inputs: Mapping[str, Path]
    job_facts: Mapping[str, Any]
    key: str
    secrets: Secrets = field(default_factory=Secrets)
    """What the stage declared, read from the driver's environment; never written down."""
    job_folder: str = ""
    """Which job folder the attempt works for (`folder_id`): job ids repeat across output
    roots, so leftovers are told apart by this."""
    resources: Resources = field(default_factory=Resources)
    """What the attempt reserves, resolved once from its settings where it is planned:
    the Ray reservation and the container's limits both read this."""


@dataclass
class AttemptOutcome:
    scratch: Path
    outputs: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    runner: str = "local"
    node_id: str | None = None
    node_ip: str | None = None
    image: str | None = None
    """The container image id, when the attempt ran in a container."""
