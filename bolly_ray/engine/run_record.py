"""One job's manifest while it runs: each stage's status, attempts, outputs and timing.

Every change is saved at once (atomically, through the job folder), so a crash leaves a
manifest that says how far the run got, and the next run resumes from it. Publishing moves
an attempt's outputs from its scratch folder into the job folder before recording them;
outputs of an earlier run that the new one no longer has are removed after the save.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bolly_ray.core.wire import AttemptOutcome, AttemptPlan
from bolly_ray.engine.manifest import JobStatus, Manifest, StageRecord, StageStatus, now_iso
from bolly_ray.engine.store import JobDir
from bolly_ray.errors import StageError
from bolly_ray.spec import StageSpec


class RunRecord:
    def __init__(self, job_dir: JobDir, job_id: str) -> None:
        self.dir = job_dir
        self.manifest = Manifest(job_id=job_id)

    def load(self) -> None:
        """Read what earlier runs recorded (a fresh manifest when there is none)."""
        self.manifest = self.dir.read_manifest(self.manifest.job_id)

    def begin(self, stages: list[str]) -> None:
        """Start a run of these stages on what earlier runs recorded."""
        self.load()
        for name in stages:
            record = self.manifest.stages.setdefault(name, StageRecord())
            if record.status == StageStatus.RUNNING:  # a crashed run left it mid-flight
                record.status = StageStatus.PENDING
        self.manifest.status = JobStatus.RUNNING
        self.save()

    def end(self, status: JobStatus) -> None:
        """The run's outcome; stages still running were interrupted (Ctrl-C, a crash)."""
        for record in self.manifest.stages.values():
            if record.status == StageStatus.RUNNING:
                record.status, record.error = StageStatus.PENDING, "interrupted"
        self.manifest.status = status

    def published(self, stage: str) -> bool:
        record = self.manifest.stages.get(stage)
        return record is not None and self.intact(record)

    def intact(self, record: StageRecord) -> bool:
        """Whether a stage's published outputs are all still there, unchanged."""
        return record.status.has_outputs and all(
            self.dir.verify(o) for o in record.outputs.values())

    def stage(self, name: str) -> StageRecord:
        return self.manifest.stages[name]

    def running(self, stage: str, attempt: int, chosen: dict[str, Any]) -> None:
        record = self.stage(stage)
        record.status, record.attempts, record.error = StageStatus.RUNNING, attempt, None
        if attempt == 1:
            record.started_at = now_iso()
            record.chosen = chosen
        self.save()

    def cached(self, stage: str) -> None:
        self.stage(stage).status = StageStatus.CACHED
        self.save()

    def skipped(self, stage: str, reason: str) -> None:
        record = self.stage(stage)
        record.status, record.outputs, record.error, record.key = (
            StageStatus.SKIPPED, {}, reason, None)
        record.chosen = {}
        self.save()

    def failed(self, stage: str, error: str) -> None:
        record = self.stage(stage)
        record.status, record.error, record.ended_at = StageStatus.FAILED, error, now_iso()
        record.outputs, record.key = {}, None
        self.save()

    def publish(self, plan: AttemptPlan, outcome: AttemptOutcome, started: float,
                folder: str) -> None:
        """Move an attempt's outputs into the job folder (`folder`: the stage's) and
        record them."""
        missing = sorted(set(plan.spec.outputs) - set(outcome.outputs))
        if missing:
            raise StageError(f"{plan.stage}: the stage did not produce {missing}")
        record = self.stage(plan.stage)
        earlier = record.outputs
        record.outputs = {
            artifact: self.dir.publish(outcome.scratch / rel,
                                       destination(plan.spec, artifact, folder, rel))
            for artifact, rel in outcome.outputs.items() if artifact in plan.spec.outputs}
        record.status, record.key, record.error = StageStatus.SUCCEEDED, plan.key, None
        record.ended_at, record.duration_s = now_iso(), round(time.monotonic() - started, 3)
        record.runner, record.node_id, record.node_ip, record.image = (
            outcome.runner, outcome.node_id, outcome.node_ip, outcome.image)
        record.metrics = dict(outcome.metrics)
        self.save()
        kept = {o.path for o in record.outputs.values()}
        self.dir.remove_outputs(o for o in earlier.values() if o.path not in kept)

    def save(self) -> None:
        self.manifest.updated_at = now_iso()
        self.dir.write_manifest(self.manifest)


def destination(spec: StageSpec, artifact: str, folder: str, rel: str) -> str:
    """Where a stage's output goes in the job folder: its stage folder, or where the stage
    exports it (the subtitles and the muxed film at the top)."""
    export = spec.exports.get(artifact)
    if export is None:
        return f"{folder}/{rel}"
    if export in (".", ""):
        return Path(rel).name
    return export
