"""`bolly-ray prepare`: probe a film and write a job file with sensible defaults.

The job id comes from the file name plus a short hash of its absolute path and size, so
preparing the same film again gives the same id (and the same job folder on the same day).
Media that bolly-ray cannot process is refused here, before any job exists. ASR and
diarization settings that depend on hardware (backend, model, device, compute type, batch
size, speaker limit) are written as `auto`: the run fits them to the machine or cluster
nodes that host each stage (bolly_ray/core/fitting.py), not to the machine that prepared the job.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bolly_ray.core.job import JobBase, apply_overrides, validate_job
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import MediaError, UsageError
from bolly_ray.stages.support.media import probe

ASR_AUTO = ("backend", "model", "device", "compute_type", "batch_size")
DIARIZE_AUTO = ("device", "max_speakers")


def job_id_for(media: Path) -> str:
    stem = unicodedata.normalize("NFKD", media.stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")[:48] or "job"
    fingerprint = f"{media.resolve()}:{media.stat().st_size}".encode()
    return f"{slug}-{hashlib.sha256(fingerprint).hexdigest()[:8]}"


def prepare_job(media: Path, registry: Registry, fields: dict[str, Any],
                overrides: Iterable[str] = ()) -> JobBase:
    """A validated job for `media`; `fields` are job fields given on the command line."""
    try:
        probe(media)
    except MediaError as err:
        raise UsageError(str(err)) from None
    data: dict[str, Any] = {"id": job_id_for(media), "media": str(media.resolve())}
    data.update({k: v for k, v in fields.items() if v not in (None, [], ())})
    if {"asr", "diarize"} <= set(registry):  # fitted where the job runs; --set wins
        data["stages"] = {"asr": dict.fromkeys(ASR_AUTO, "auto"),
                          "diarize": dict.fromkeys(DIARIZE_AUTO, "auto")}
    data = apply_overrides(data, overrides, set(registry))
    return validate_job(data, registry.specs, str(media))
