"""The preflight: every job of a run checked before anything starts, into a plan.

All problems of all jobs are gathered into one message (bad job settings, files a job
brings that a stage would refuse, models that required stages lack, libraries native stages
lack), so a batch of films fails at once or not at all. What it decides is the run's plan:
each job's session, its settings fitted to the hardware that will host each stage, and the
stages that will be skipped, with the reason (switched off, nothing to do, an optional
stage's model missing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bolly_ray.core.fitting import Hardware, fit, fits_to_hardware
from bolly_ray.core.job import JobBase
from bolly_ray.core.wire import Selection
from bolly_ray.engine.libraries import missing_libraries
from bolly_ray.engine.registry import Registry
from bolly_ray.engine.session import JobSession
from bolly_ray.errors import PreflightError, UsageError
from bolly_ray.spec import ComputeKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPlan:
    """What the preflight decided: the jobs' sessions (settings fitted) and the skips."""

    sessions: list[JobSession]

    def skips(self) -> dict[str, dict[str, str]]:
        """Job id -> stage -> why it will not run."""
        return {s.job.id: {n: r for n in s.selected if (r := s.skip_reason(n))}
                for s in self.sessions}


@dataclass(frozen=True)
class Preflight:
    registry: Registry
    in_docker: frozenset[ComputeKind]
    hardware: Callable[[list[JobSession]], Hardware]
    """What the stages will run on (asked only when some stage fits its settings)."""

    def check(self, jobs: Sequence[JobBase], selection: Selection) -> RunPlan:
        sessions, problems = [], []
        for job in jobs:
            try:
                sessions.append(JobSession(job, self.registry, selection))
            except UsageError as err:
                problems.append(f"job {job.id}: {err}")
        problems += [problem for s in sessions for problem in self._bad_inputs(s)]
        if problems:
            raise UsageError("\n".join(problems))
        self._fit_settings(sessions)
        missing = self._missing_models(sessions, problems)
        if problems:
            raise UsageError("\n".join(problems))
        if missing:
            raise PreflightError("missing models:\n  " + "\n  ".join(sorted(missing)))
        native = {name for kind in ComputeKind if kind not in self.in_docker
                  for name in selected_of_kind(sessions, self.registry, kind)}
        lacking = missing_libraries(self.registry, native)
        if lacking:
            raise UsageError("missing libraries for native stages:\n  " + "\n  ".join(lacking))
        return RunPlan(sessions)

    def _bad_inputs(self, session: JobSession) -> list[str]:
        """Files the job brings that a stage it runs would refuse (one line each)."""
        problems = []
        for artifact, path in session.job.artifacts.items():
            for name in session.selected:
                if artifact not in self.registry[name].spec.all_inputs:
                    continue
                problem = self.registry[name].check_input(artifact, path)
                if problem:
                    problems.append(f"job {session.job.id}: artifacts.{artifact}: {problem}")
                    break
        return problems

    def _fit_settings(self, sessions: list[JobSession]) -> None:
        """Each stage's `auto` settings fitted to the hardware that will host it, before
        models are checked and cache keys made; what was chosen is logged once per stage."""
        fitting = [(s, name) for s in sessions for name in s.selected
                   if fits_to_hardware(self.registry[name])]
        if not fitting:
            return
        hardware = self.hardware(sessions)
        told: set[str] = set()
        for session, name in fitting:
            stage, settings = self.registry[name], session.settings(name)
            fitted, chosen = fit(stage, settings, hardware.host_for(stage, settings))
            session.fit(name, fitted, chosen)
            if chosen and chosen["why"] not in told:
                told.add(chosen["why"])
                log.info("%s: %s", name, chosen["why"])

    def _missing_models(self, sessions: list[JobSession], problems: list[str]) -> set[str]:
        """Models that required stages lack (all of them, for one message). A stage the job
        does not need, or an optional one whose model is missing, is marked to be skipped,
        with the reason."""
        missing: set[str] = set()
        for session in sessions:
            for name in session.selected:
                try:  # a stage's model setting can be wrong (no such folder)
                    self.registry[name].model_id(session.settings(name))
                except UsageError as err:
                    problems.append(f"job {session.job.id}: {err}")
                    continue
                if not session.is_disabled(name):
                    missing |= self._stage_models(session, name)
        return missing

    def _stage_models(self, session: JobSession, name: str) -> set[str]:
        stage, settings = self.registry[name], session.settings(name)
        facts = session.job_facts(name)
        idle = stage.not_needed(settings, facts)
        if idle:
            session.will_skip(name, idle)
            return set()
        lacking = stage.missing_models(settings) if stage.needs_models(settings, facts) else []
        if lacking and session.is_critical(name):
            return set(lacking)
        if lacking:
            session.will_skip(name, "; ".join(lacking))
            log.warning("%s: %s will be skipped: %s", session.job.id, name, "; ".join(lacking))
        return set()


def selected_of_kind(sessions: list[JobSession], registry: Registry, kind: ComputeKind
                     ) -> set[str]:
    """Every stage of this compute kind that some job of the run will run."""
    return {name for s in sessions for name in s.selected
            if registry[name].spec.compute == kind}
