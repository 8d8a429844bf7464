"""Content hashes of artifacts and cache keys of stage runs.

Files hash by content; a directory artifact hashes the sorted list of its files' relative
paths and hashes. The source film can be many gigabytes and is read by nobody but demux, so
it gets a cheaper fingerprint: size, modification time and the first and last MiB.
A stage run's cache key covers everything that can change its outputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def artifact_files(path: Path) -> list[Path]:
    """The files making up an artifact: itself, or every file under a directory, sorted."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def sha256_artifact(path: Path) -> tuple[str, int]:
    """(hash, total bytes) of a file or directory artifact."""
    if not path.is_dir():
        return sha256_file(path), path.stat().st_size
    digest, total = hashlib.sha256(), 0
    for file in artifact_files(path):
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
        total += file.stat().st_size
    return digest.hexdigest(), total


def source_fingerprint(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    with path.open("rb") as f:
        digest.update(f.read(CHUNK))
        if stat.st_size > CHUNK:
            f.seek(max(CHUNK, stat.st_size - CHUNK))
            digest.update(f.read(CHUNK))
    return "fp:" + digest.hexdigest()


def cache_key(*, stage: str, version: str, settings: Mapping[str, Any],
              job_facts: Mapping[str, Any], model_id: str | None,
              inputs: Mapping[str, str], runtime: str | None = None) -> str:
    """sha256 over a canonical JSON of everything a stage run depends on; `runtime` is the
    container image a stage runs in (absent for native runs, whose keys it leaves as they were)."""
    payload = {"stage": stage, "version": version, "settings": settings,
               "job": job_facts, "model": model_id, "inputs": dict(sorted(inputs.items()))}
    if runtime is not None:
        payload["runtime"] = runtime
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()
