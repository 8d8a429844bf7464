"""The driver's side of one job run: plan, cache, publish, record.

A `JobSession` owns a job folder for the length of a run (it holds the lock). It decides
which stages run and which are cached, hands out `AttemptPlan`s, publishes what attempts
produced and keeps the manifest up to date. It knows nothing about where attempts execute:
the local and Ray executors both drive it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bolly_ray.dag import Pipeline, build_pipeline
from bolly_ray.errors import StageError, UsageError
from bolly_ray.hashing import cache_key, sha256_artifact, source_fingerprint
from bolly_ray.job import JobBase, job_json_for_disk
from bolly_ray.lock import JobLock
from bolly_ray.manifest import JobStatus, Manifest, StageRecord, StageStatus, now_iso
from bolly_ray.registry import Registry
from bolly_ray.secrets import Secrets
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    OptionalStageSettings,
    Resources,
    StageSettings,
    StageSpec,
)
from bolly_ray.store import JobDir, write_atomic

log = logging.getLogger(__name__)


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


def job_facts(job: JobBase) -> dict[str, Any]:
    """Job-level values a stage may declare in `StageSpec.job_fields`."""
    return {"id": job.id, "name": job.output_name, "title": job.title, "year": job.year,
            "media_name": job.media.name,
            "source_language": job.source_language,
            "target_languages": list(job.target_languages)}


class JobSession:
    def __init__(self, job: JobBase, registry: Registry, selection: Selection) -> None:
        self.job = job
        self.registry = registry
        self.selection = selection
        self.dir = JobDir(job.job_dir())
        self.pipeline: Pipeline = build_pipeline(
            registry.specs, {SOURCE_ARTIFACT, *job.artifacts})
        self.selected = self.pipeline.select(selection.only, selection.start)
        self._lock = JobLock(self.dir.root, job.id)
        self.unavailable: dict[str, str] = {}
        """Optional stages the preflight found cannot run here, with the reason."""
        self.fitted: dict[str, tuple[StageSettings, dict[str, Any]]] = {}
        """Stages whose settings the executor fitted to the hardware, with what it chose."""
        self.manifest = Manifest(job_id=job.id)
        self._forced = set(self.selected) if selection.force else set()
        if selection.start:
            self._forced |= {selection.start} | self.pipeline.descendants(selection.start)

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        self._lock.acquire()
        try:
            self._prepare_dir()
            self._check_upstream_ready()
        except BaseException:
            self._lock.release()
            raise

    def close(self, status: JobStatus) -> None:
        for record in self.manifest.stages.values():
            if record.status == StageStatus.RUNNING:  # interrupted (Ctrl-C, a crash)
                record.status, record.error = StageStatus.PENDING, "interrupted"
        self.manifest.status = status
        self.dir.clear_scratch()  # first: on a full disk, that space lets the manifest save
        try:
            self._save()
        finally:
            self._lock.release()

    def _prepare_dir(self) -> None:
        self.dir.create()
        self.dir.clear_scratch()
        write_atomic(self.dir.root / "job.json", job_json_for_disk(self.job))
        self.manifest = self.dir.read_manifest(self.job.id)
        skipped = self.pipeline.unneeded - set(self.selected)  # fed only what the job brings
        for name in self.pipeline.order:
            if name in skipped:
                continue
            record = self.manifest.stages.setdefault(name, StageRecord())
            if record.status == StageStatus.RUNNING:  # a crashed run left it mid-flight
                record.status = StageStatus.PENDING
        self.manifest.status = JobStatus.RUNNING
        self._save()

    def _check_upstream_ready(self) -> None:
        missing = []
        for stage in self.selected:
            for artifact in self.pipeline.specs[stage].inputs:
                producer = self.pipeline.producers.get(artifact)
                if producer and producer not in self.selected and not self._published(producer):
                    missing.append(f"{stage} needs {artifact!r} from {producer}, which has no "
                                   "published output yet")
        if missing:
            raise UsageError("cannot run the selected stages:\n  " + "\n  ".join(missing)
                             + "\n  run those stages first, or run the whole job")

    def _published(self, stage: str) -> bool:
        record = self.manifest.stages.get(stage)
        return record is not None and self._intact(record)

    def _intact(self, record: StageRecord) -> bool:
        """Whether a stage's published outputs are all still there, unchanged."""
        return record.status.has_outputs and all(
            self.dir.verify(o) for o in record.outputs.values())

    # -- planning ----------------------------------------------------------------------------

    def record(self, stage: str) -> StageRecord:
        return self.manifest.stages[stage]

    def settings(self, stage: str) -> StageSettings:
        """The stage's settings for this run: as fitted to the hardware, else as written."""
        if stage in self.fitted:
            return self.fitted[stage][0]
        return self.job.stage_settings(stage)  # type: ignore[return-value]

    def fit(self, stage: str, settings: StageSettings, chosen: dict[str, Any]) -> None:
        """Run the stage with `settings` (its autos resolved), recording `chosen`."""
        self.fitted[stage] = (settings, chosen)

    def is_disabled(self, stage: str) -> bool:
        settings = self.job.stage_settings(stage)
        return isinstance(settings, OptionalStageSettings) and not settings.enabled

    def job_facts(self, stage: str) -> dict[str, Any]:
        """The job fields this stage declares, as its attempts will see them."""
        facts = job_facts(self.job)
        return {k: facts[k] for k in self.pipeline.specs[stage].job_fields}

    def is_critical(self, stage: str) -> bool:
        """Whether the job fails without this stage: by its spec, or `required` in the job."""
        settings = self.job.stage_settings(stage)
        return self.pipeline.specs[stage].critical or bool(
            isinstance(settings, OptionalStageSettings) and settings.required)

    def skip_reason(self, stage: str) -> str | None:
        """Why this stage will not run in this job (switched off, or its model is missing)."""
        if self.is_disabled(stage):
            return "disabled in the job settings"
        return self.unavailable.get(stage)

    def blocked_by(self, stage: str) -> list[str]:
        """Required inputs that are not available (their producer failed or was skipped)."""
        spec = self.pipeline.specs[stage]
        return [a for a in spec.inputs if self._input_path(a) is None]

    def plan(self, stage: str, runtime: str | None = None, gpus_available: float = 0.0
             ) -> AttemptPlan:
        """The attempt to make; `gpus_available`: the GPUs where it will run, which decide
        a GPU-kind stage's resources when its device is auto."""
        spec = self.pipeline.specs[stage]
        inputs = {a: p for a in spec.all_inputs if (p := self._input_path(a)) is not None}
        settings = self.settings(stage)
        facts = self.job_facts(stage)
        key = cache_key(
            stage=stage, version=spec.version, settings=settings.model_dump(mode="json"),
            job_facts=facts,
            model_id=self.registry[stage].model_id(settings), runtime=runtime,
            inputs={a: self._input_hash(a) for a in inputs})
        return AttemptPlan(self.job.id, stage, spec, settings, inputs, facts, key,
                           Secrets.from_env().only(spec.secrets), folder_id(self.dir.root),
                           self.registry[stage].resources(settings, gpus_available))

    def is_cached(self, plan: AttemptPlan) -> bool:
        if plan.stage in self._forced:
            return False
        record = self.record(plan.stage)
        return (record.key == plan.key and set(record.outputs) == set(plan.spec.outputs)
                and self._intact(record))

    def _input_path(self, artifact: str) -> Path | None:
        if artifact == SOURCE_ARTIFACT:
            return self.job.media
        if artifact in self.job.artifacts:
            return self.job.artifacts[artifact]
        producer = self.pipeline.producers.get(artifact)
        record = self.manifest.stages.get(producer) if producer else None
        if record is None or not record.status.has_outputs or artifact not in record.outputs:
            return None
        return self.dir.root / record.outputs[artifact].path

    def _input_hash(self, artifact: str) -> str:
        if artifact == SOURCE_ARTIFACT:
            return source_fingerprint(self.job.media)
        if artifact in self.job.artifacts:
            return sha256_artifact(self.job.artifacts[artifact])[0]
        producer = self.pipeline.producers[artifact]
        return self.record(producer).outputs[artifact].sha256

    # -- recording ---------------------------------------------------------------------------

    def mark_running(self, stage: str, attempt: int) -> None:
        record = self.record(stage)
        record.status, record.attempts, record.error = StageStatus.RUNNING, attempt, None
        if attempt == 1:
            record.started_at = now_iso()
            record.chosen = self.fitted[stage][1] if stage in self.fitted else {}
        self._save()

    def mark_cached(self, stage: str) -> None:
        self.record(stage).status = StageStatus.CACHED
        self._save()

    def mark_skipped(self, stage: str, reason: str) -> None:
        record = self.record(stage)
        record.status, record.outputs, record.error, record.key = (
            StageStatus.SKIPPED, {}, reason, None)
        record.chosen = {}
        self._save()

    def mark_failed(self, stage: str, error: str) -> None:
        record = self.record(stage)
        record.status, record.error, record.ended_at = StageStatus.FAILED, error, now_iso()
        record.outputs, record.key = {}, None
        self._save()

    def publish(self, plan: AttemptPlan, outcome: AttemptOutcome, started: float) -> None:
        """Move an attempt's outputs into the job folder and record them."""
        missing = sorted(set(plan.spec.outputs) - set(outcome.outputs))
        if missing:
            raise StageError(f"{plan.stage}: the stage did not produce {missing}")
        record = self.record(plan.stage)
        earlier = record.outputs
        folder = self.dir.stage_folder(self.pipeline.number(plan.stage), plan.stage)
        record.outputs = {
            artifact: self.dir.publish(outcome.scratch / rel,
                                       self._destination(plan.spec, artifact, folder, rel))
            for artifact, rel in outcome.outputs.items() if artifact in plan.spec.outputs}
        record.status, record.key, record.error = StageStatus.SUCCEEDED, plan.key, None
        record.ended_at, record.duration_s = now_iso(), round(time.monotonic() - started, 3)
        record.runner, record.node_id, record.node_ip, record.image = (
            outcome.runner, outcome.node_id, outcome.node_ip, outcome.image)
        record.metrics = dict(outcome.metrics)
        self._save()
        kept = {o.path for o in record.outputs.values()}
        self.dir.remove_outputs(o for o in earlier.values() if o.path not in kept)

    @staticmethod
    def _destination(spec: StageSpec, artifact: str, folder: str, rel: str) -> str:
        export = spec.exports.get(artifact)
        if export is None:
            return f"{folder}/{rel}"
        if export in (".", ""):
            return Path(rel).name
        return export

    def _save(self) -> None:
        self.manifest.updated_at = now_iso()
        self.dir.write_manifest(self.manifest)


def final_status(session: JobSession, stages: Iterable[str]) -> JobStatus:
    """Succeeded when every stage ran (optional ones may have failed) and every critical
    one has outputs or was skipped; failed otherwise, an interrupted run included."""
    done = (StageStatus.SUCCEEDED, StageStatus.CACHED, StageStatus.SKIPPED)
    for stage in stages:
        status = session.record(stage).status
        if status in (StageStatus.PENDING, StageStatus.RUNNING) or (
                session.is_critical(stage) and status not in done):
            return JobStatus.FAILED
    return JobStatus.SUCCEEDED
