"""`bolly-ray status`: a job's manifest as a table (or JSON), once or live while it runs.

The manifest is rewritten (atomically) at every stage change, so reading it is all a watcher
needs: no connection to the run's Ray cluster. The job lock's record says whether a run is
still alive, so a watcher of a run that crashed stops instead of waiting for ever.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bolly_ray.core.job import load_job
from bolly_ray.engine.lock import run_holder
from bolly_ray.engine.manifest import JobStatus, Manifest, StageRecord, StageStatus
from bolly_ray.engine.registry import Registry
from bolly_ray.errors import UsageError

STATUS_STYLE = {StageStatus.SUCCEEDED: "green", StageStatus.CACHED: "cyan",
                StageStatus.FAILED: "red", StageStatus.RUNNING: "yellow",
                StageStatus.SKIPPED: "dim", StageStatus.PENDING: "dim"}


def find_job_dir(target: Path, registry: Registry) -> Path:
    """The job folder given, or the one a job file describes; it must hold a manifest."""
    job_dir = target if target.is_dir() else load_job(target, registry.specs).job_dir()
    if not (job_dir / "manifest.json").is_file():
        raise UsageError(f"{job_dir / 'manifest.json'}: no manifest (has the job run yet?)")
    return job_dir


def render_manifest(manifest: Manifest, now: dt.datetime | None = None) -> Table:
    """The stages as a table; a running stage's seconds count up to `now`."""
    now = now or dt.datetime.now(dt.UTC)
    table = Table(title=f"job {manifest.job_id}: {manifest.status.value}", title_justify="left")
    for column in ("stage", "status", "attempts", "seconds", "runner", "node", "error"):
        table.add_column(column, overflow="fold")
    for name, record in manifest.stages.items():
        style = STATUS_STYLE[record.status]
        table.add_row(name, f"[{style}]{record.status.value}[/{style}]", str(record.attempts),
                      _seconds(record, now), record.runner or "", record.node_ip or "",
                      record.error or "")
    return table


def _seconds(record: StageRecord, now: dt.datetime) -> str:
    if record.duration_s is not None:
        return f"{record.duration_s:.1f}"
    if record.status == StageStatus.RUNNING and record.started_at:
        return f"{(now - dt.datetime.fromisoformat(record.started_at)).total_seconds():.0f}…"
    return ""


def watch(job_dir: Path, console: Console, interval_s: float = 1.0) -> Manifest:
    """Redraw the job's stages until its run ends (or is found gone); the last manifest."""
    manifest, gone = _look(job_dir)
    with Live(_view(manifest, gone), console=console, refresh_per_second=4) as live:
        while manifest.status == JobStatus.RUNNING and not gone:
            time.sleep(interval_s)
            manifest, gone = _look(job_dir)
            live.update(_view(manifest, gone))
    return manifest


def run_is_gone(manifest: Manifest, job_dir: Path) -> bool:
    """The manifest says running but no live run holds the job: the run died."""
    return manifest.status == JobStatus.RUNNING and run_holder(job_dir) is None


def _look(job_dir: Path) -> tuple[Manifest, bool]:
    manifest = Manifest.read(job_dir / "manifest.json")
    return manifest, run_is_gone(manifest, job_dir)


def _view(manifest: Manifest, gone: bool) -> Group:
    if gone:
        note = Text("no run holds this job any more (it ended without closing the manifest); "
                    "rerun the job to resume it", style="red")
        return Group(render_manifest(manifest), note)
    return Group(render_manifest(manifest))
