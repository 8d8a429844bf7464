"""The driver's side of one job run: plan, cache, publish, record.

A `JobSession` owns a job folder for the length of a run (it holds the lock). It decides
which stages run and which are cached, hands out `AttemptPlan`s, publishes what attempts
produced and keeps the manifest up to date. It knows nothing about where attempts execute:
the local and Ray executors both drive it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bolly_ray.core.dag import Pipeline, build_pipeline
from bolly_ray.core.files import write_atomic
from bolly_ray.core.hashing import cache_key, sha256_artifact, source_fingerprint
from bolly_ray.core.job import JobBase, job_json_for_disk
from bolly_ray.core.secrets import Secrets
from bolly_ray.core.wire import AttemptOutcome, AttemptPlan, Selection, folder_id
from bolly_ray.engine.lock import JobLock
from bolly_ray.engine.manifest import JobStatus, Manifest, StageRecord, StageStatus
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.run_record import RunRecord
from bolly_ray.engine.store import JobDir
from bolly_ray.errors import UsageError
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    OptionalStageSettings,
    StageSettings,
)

log = logging.getLogger(__name__)


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
        self._unavailable: dict[str, str] = {}
        """Stages the preflight found cannot or need not run here, with the reason."""
        self.fitted: dict[str, tuple[StageSettings, dict[str, Any]]] = {}
        """Stages whose settings the executor fitted to the hardware, with what it chose."""
        self.book = RunRecord(self.dir, job.id)
        """The job's manifest as this run records it."""
        self.inputs = JobInputs(job, self.pipeline, self.book)
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
        self.book.end(status)
        self.dir.clear_scratch()  # first: on a full disk, that space lets the manifest save
        try:
            self.book.save()
        finally:
            self._lock.release()

    def _prepare_dir(self) -> None:
        self.dir.create()
        self.dir.clear_scratch()
        write_atomic(self.dir.root / "job.json", job_json_for_disk(self.job))
        skipped = self.pipeline.unneeded - set(self.selected)  # fed only what the job brings
        self.book.begin([name for name in self.pipeline.order if name not in skipped])

    def _check_upstream_ready(self) -> None:
        missing = []
        for stage in self.selected:
            for artifact in self.pipeline.specs[stage].inputs:
                producer = self.pipeline.producers.get(artifact)
                if producer and producer not in self.selected and not self.book.published(
                        producer):
                    missing.append(f"{stage} needs {artifact!r} from {producer}, which has no "
                                   "published output yet")
        if missing:
            raise UsageError("cannot run the selected stages:\n  " + "\n  ".join(missing)
                             + "\n  run those stages first, or run the whole job")

    # -- planning ----------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self.book.manifest

    def record(self, stage: str) -> StageRecord:
        return self.book.stage(stage)

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
        return self._unavailable.get(stage)

    def will_skip(self, stage: str, reason: str) -> None:
        """Skip the stage in this run (the preflight found nothing to do, or an optional
        stage's model missing)."""
        self._unavailable[stage] = reason

    def blocked_by(self, stage: str) -> list[str]:
        """Required inputs that are not available (their producer failed or was skipped)."""
        spec = self.pipeline.specs[stage]
        return [a for a in spec.inputs if self.inputs.path(a) is None]

    def plan(self, stage: str, runtime: str | None = None, gpus_available: float = 0.0
             ) -> AttemptPlan:
        """The attempt to make; `gpus_available`: the GPUs where it will run, which decide
        a GPU-kind stage's resources when its device is auto."""
        spec = self.pipeline.specs[stage]
        inputs = {a: p for a in spec.all_inputs if (p := self.inputs.path(a)) is not None}
        settings = self.settings(stage)
        facts = self.job_facts(stage)
        key = cache_key(
            stage=stage, version=spec.version, settings=settings.model_dump(mode="json"),
            job_facts=facts,
            model_id=self.registry[stage].model_id(settings), runtime=runtime,
            inputs={a: self.inputs.digest(a) for a in inputs})
        return AttemptPlan(self.job.id, stage, spec, settings, inputs, facts, key,
                           Secrets.from_env().only(spec.secrets), folder_id(self.dir.root),
                           self.registry[stage].resources(settings, gpus_available))

    def is_cached(self, plan: AttemptPlan) -> bool:
        if plan.stage in self._forced:
            return False
        record = self.record(plan.stage)
        return (record.key == plan.key and set(record.outputs) == set(plan.spec.outputs)
                and self.book.intact(record))

    # -- recording ---------------------------------------------------------------------------

    def chosen(self, stage: str) -> dict[str, Any]:
        """What fitting the settings to the hardware chose for this stage, and why."""
        return self.fitted[stage][1] if stage in self.fitted else {}

    def publish(self, plan: AttemptPlan, outcome: AttemptOutcome, started: float) -> None:
        """Move an attempt's outputs into the job folder and record them."""
        folder = self.dir.stage_folder(self.pipeline.number(plan.stage), plan.stage)
        self.book.publish(plan, outcome, started, folder)


class JobInputs:
    """Where each artifact of a job comes from: the media, a file the job brings, or the
    published output of one of its stages (as the run record says)."""

    def __init__(self, job: JobBase, pipeline: Pipeline, book: RunRecord) -> None:
        self.job, self.pipeline, self.book = job, pipeline, book

    def path(self, artifact: str) -> Path | None:
        """The artifact's file, or None while its producer has published nothing."""
        if artifact == SOURCE_ARTIFACT:
            return self.job.media
        if artifact in self.job.artifacts:
            return self.job.artifacts[artifact]
        producer = self.pipeline.producers.get(artifact)
        record = self.book.manifest.stages.get(producer) if producer else None
        if record is None or not record.status.has_outputs or artifact not in record.outputs:
            return None
        return self.book.dir.root / record.outputs[artifact].path

    def digest(self, artifact: str) -> str:
        """The content hash a cache key takes for the artifact."""
        if artifact == SOURCE_ARTIFACT:
            return source_fingerprint(self.job.media)
        if artifact in self.job.artifacts:
            return sha256_artifact(self.job.artifacts[artifact])[0]
        producer = self.pipeline.producers[artifact]
        return self.book.stage(producer).outputs[artifact].sha256


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
