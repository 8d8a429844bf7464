"""Executors: where and how stage attempts run (in-process, or on Ray)."""

from bolly_ray.executors.base import Executor, JobIntake, JobOutcome
from bolly_ray.executors.local import LocalExecutor

__all__ = ["Executor", "JobIntake", "JobOutcome", "LocalExecutor"]
