"""The job folder on disk: layout, scratch space and atomic publication.

Stages write only into a fresh scratch folder per attempt. Only the driver moves results into
the job folder, and always the same way: fsync the files, rename into place (atomic on one
filesystem), fsync the parent folder. A stale or duplicated attempt therefore never leaves
a half-written file where a published one belongs.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

from bolly_ray.core.files import fsync_path, write_atomic
from bolly_ray.core.hashing import artifact_files, sha256_artifact
from bolly_ray.engine.manifest import Manifest, OutputRecord

SCRATCH = ".scratch"


class JobDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def create(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)

    def stage_folder(self, number: int, stage: str) -> str:
        return f"{number:02d}_{stage}"

    def new_scratch(self, stage: str, attempt: int) -> Path:
        path = self.root / SCRATCH / f"{stage}-a{attempt}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def clear_scratch(self) -> None:
        """Drop leftovers of attempts a crash interrupted (only under the job lock)."""
        shutil.rmtree(self.root / SCRATCH, ignore_errors=True)

    def read_manifest(self, job_id: str) -> Manifest:
        if self.manifest_path.exists():
            return Manifest.read(self.manifest_path)
        return Manifest(job_id=job_id)

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.manifest_path, manifest.to_json())

    def publish(self, source: Path, destination: str) -> OutputRecord:
        """Move a finished artifact (file or folder) from scratch to `destination`."""
        target = self.root / destination
        target.parent.mkdir(parents=True, exist_ok=True)
        for file in artifact_files(source):
            fsync_path(file)
        digest, size = sha256_artifact(source)
        if source.is_dir():
            _replace_dir(source, target)
        else:
            os.replace(source, target)
        fsync_path(target.parent)
        return OutputRecord(path=destination, sha256=digest, bytes=size)

    def remove_outputs(self, records: Iterable[OutputRecord]) -> None:
        """Delete outputs the manifest no longer lists (a new name, say mkv after mp4), so
        the job folder holds only what the manifest describes."""
        for record in records:
            path = self.root / record.path
            if not path.resolve().is_relative_to(self.root.resolve()):
                continue  # the manifest is data: never let it point outside the job
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def verify(self, record: OutputRecord) -> bool:
        """Whether a published output is still there, unchanged."""
        path = self.root / record.path
        if not path.exists():
            return False
        return sha256_artifact(path) == (record.sha256, record.bytes)


def _replace_dir(source: Path, target: Path) -> None:
    # Directories cannot be swapped atomically; a crash between the two renames leaves the
    # target missing, which verification notices, so the stage simply runs again.
    if target.exists():
        trash = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, trash)
        os.replace(source, target)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(source, target)
