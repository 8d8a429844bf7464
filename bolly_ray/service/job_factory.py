"""Jobs made from requests, each with an id that is its deduplication key.

A request becomes a job the way `bolly-ray prepare` makes one (the same validation, the
service's `--set` settings first, then the request's own), and the job's id is a hash of
what decides its result: the media's content hash (or, for a film named by path, its path,
size and modification time), every job field that reaches a stage (languages, stage
settings, models named in them) and bolly-ray's version. Two identical requests therefore
name the same job, which the queue runs once. The creation date and the id itself are left
out of the hash, so an identical request on another day still finds the finished job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bolly_ray import __version__
from bolly_ray.core.job import JobBase, apply_overrides, validate_job
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import UsageError
from bolly_ray.service.errors import RequestError
from bolly_ray.service.settings import ServiceSettings

SERVICE_USER = "service"
NOT_IN_KEY = {"id", "created", "user", "out_root"}


@dataclass(frozen=True)
class PlannedJob:
    id: str
    kind: str
    job: JobBase

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.job.model_dump_json())
        return data


class JobFactory:
    def __init__(self, settings: ServiceSettings, registry: Registry) -> None:
        self.settings, self.registry = settings, registry

    def make(self, kind: str, media: Path, identity: str, fields: dict[str, Any],
             overrides: list[str]) -> PlannedJob:
        """A validated job for `media`; `identity` says what the media is (its hash)."""
        data: dict[str, Any] = {"id": "pending", "media": str(media), "user": SERVICE_USER,
                                "out_root": str(self.settings.jobs_root.resolve()),
                                "source_language": self.settings.source_language, **fields}
        try:
            data = apply_overrides(data, [*self.settings.overrides, *overrides],
                                   set(self.registry))
            job = validate_job(data, self.registry.specs, "the request")
        except UsageError as err:
            raise RequestError(str(err), status=422) from None
        key = dedup_key(kind, identity, job)
        job_id = f"{kind}-{key[:20]}"
        return PlannedJob(job_id, kind, job.model_copy(update={"id": job_id}))


def dedup_key(kind: str, identity: str, job: JobBase) -> str:
    decisive = {k: v for k, v in json.loads(job.model_dump_json()).items()
                if k not in NOT_IN_KEY}
    text = json.dumps({"kind": kind, "media": identity, "job": decisive,
                       "bolly_ray": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
