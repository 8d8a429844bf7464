"""The job manifest: the durable record of every stage run, and the basis of resume.

Its shape is a contract (see DESIGN.md). Only the driver writes it, always atomically, after
every state change, so a crash at any point leaves the last consistent state on disk.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bolly_ray import __version__
from bolly_ray.errors import UsageError


class StageStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def has_outputs(self) -> bool:
        return self in (StageStatus.SUCCEEDED, StageStatus.CACHED)


class JobStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class OutputRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    """Relative to the job folder."""
    sha256: str
    bytes: int


class StageRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: StageStatus = StageStatus.PENDING
    attempts: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    duration_s: float | None = None
    node_id: str | None = None
    node_ip: str | None = None
    runner: str | None = None
    image: str | None = None
    key: str | None = None
    outputs: dict[str, OutputRecord] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    chosen: dict[str, Any] = Field(default_factory=dict)
    """Settings the run fitted to the hardware (`<stage>.<setting>`: value) and `why`;
    empty when the job named them all (and in manifests older than this field)."""


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str
    status: JobStatus = JobStatus.RUNNING
    bolly_ray_version: str = __version__
    updated_at: str | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            return cls.model_validate_json(path.read_bytes())
        except (ValidationError, ValueError) as err:
            raise UsageError(f"{path}: not a bolly-ray manifest "
                             f"({err.__class__.__name__})") from None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
