"""`bolly-ray status`: a job's manifest as a table (or JSON)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from bolly_ray.errors import UsageError
from bolly_ray.job import load_job
from bolly_ray.manifest import Manifest, StageStatus
from bolly_ray.registry import Registry

STATUS_STYLE = {StageStatus.SUCCEEDED: "green", StageStatus.CACHED: "cyan",
                StageStatus.FAILED: "red", StageStatus.RUNNING: "yellow",
                StageStatus.SKIPPED: "dim", StageStatus.PENDING: "dim"}


def find_manifest(target: Path, registry: Registry) -> Manifest:
    """The manifest of a job folder, or of the job a job file describes."""
    if target.is_dir():
        path = target / "manifest.json"
    else:
        path = load_job(target, registry.specs).job_dir() / "manifest.json"
    if not path.is_file():
        raise UsageError(f"{path}: no manifest (has the job run yet?)")
    return Manifest.read(path)


def render_manifest(manifest: Manifest) -> Table:
    table = Table(title=f"job {manifest.job_id}: {manifest.status.value}", title_justify="left")
    for column in ("stage", "status", "attempts", "seconds", "runner", "node", "error"):
        table.add_column(column, overflow="fold")
    for name, record in manifest.stages.items():
        style = STATUS_STYLE[record.status]
        table.add_row(name, f"[{style}]{record.status.value}[/{style}]", str(record.attempts),
                      f"{record.duration_s:.1f}" if record.duration_s is not None else "",
                      record.runner or "", record.node_ip or "", record.error or "")
    return table
