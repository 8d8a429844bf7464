"""`bolly-ray report`: what a run (or a batch of runs) did, as a timeline picture and a table.

Everything comes from the job folders' manifests, so a report can be made at any time
after a run, for one job or many: one lane per node and runner (actor or task), one bar per
stage run (the part spent waiting, when the worker reported its own time, drawn hatched;
the attempt count written on bars that were retried), and a table per stage of runs, cache
hits, time, audio seconds, speed against real time and model load time. When the run was on
Ray, its own timeline (chrome tracing JSON, written by the executor into each job's logs)
is copied next to the picture.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bolly_ray.engine.manifest import Manifest
from bolly_ray.errors import UsageError

RAY_TIMELINE = "ray_timeline.json"


@dataclass(frozen=True)
class StageRun:
    job: str
    stage: str
    status: str
    lane: str
    start: float | None
    duration_s: float
    work_s: float
    attempts: int
    audio_s: float
    model_load_s: float


@dataclass(frozen=True)
class StageRow:
    stage: str
    runs: int
    cached: int
    skipped: int
    failed: int
    retries: int
    seconds: float
    audio_s: float
    realtime_x: float | None
    model_load_s: float


def job_dirs(targets: list[Path]) -> list[Path]:
    """Job folders named directly, or found under the folders given."""
    found: list[Path] = []
    for target in targets:
        if (target / "manifest.json").is_file():
            found.append(target)
        elif target.is_dir():
            found += sorted(p.parent for p in target.rglob("manifest.json"))
    if not found:
        raise UsageError(f"no job folders (with a manifest.json) in {', '.join(map(str, targets))}")
    return found


def stage_runs(folder: Path) -> list[StageRun]:
    manifest = Manifest.read(folder / "manifest.json")
    runs = []
    for stage, record in manifest.stages.items():
        metrics = record.metrics
        duration = record.duration_s or 0.0
        runs.append(StageRun(
            job=manifest.job_id, stage=stage, status=record.status.value,
            lane=f"{record.node_ip or 'this machine'} · {record.runner or '-'}",
            start=_timestamp(record.started_at), duration_s=duration,
            work_s=min(duration, metrics.get("worker_s", duration)), attempts=record.attempts,
            audio_s=metrics.get("audio_s", 0.0), model_load_s=metrics.get("model_load_s", 0.0)))
    return runs


def table(runs: list[StageRun]) -> list[StageRow]:
    by_stage: dict[str, list[StageRun]] = defaultdict(list)
    for run in runs:
        by_stage[run.stage].append(run)
    rows = []
    for stage, group in by_stage.items():
        ran = [r for r in group if r.status == "succeeded"]
        seconds = round(sum(r.duration_s for r in ran), 3)
        audio = round(sum(r.audio_s for r in ran), 3)
        rows.append(StageRow(
            stage=stage, runs=len(ran), cached=sum(r.status == "cached" for r in group),
            skipped=sum(r.status == "skipped" for r in group),
            failed=sum(r.status == "failed" for r in group),
            retries=sum(max(0, r.attempts - 1) for r in ran), seconds=seconds, audio_s=audio,
            realtime_x=round(audio / seconds, 2) if seconds and audio else None,
            model_load_s=round(sum(r.model_load_s for r in ran), 3)))
    return rows


def draw_timeline(runs: list[StageRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = sorted((r for r in runs if r.start is not None and r.status == "succeeded"),
                   key=lambda r: (r.lane, r.start))
    rows = packed_rows(timed)
    lanes = sorted(set(rows.values())) or ["(nothing ran)"]
    stages = sorted({r.stage for r in timed})
    colours = {s: plt.get_cmap("tab20")(i % 20) for i, s in enumerate(stages)}
    origin = min((r.start for r in timed if r.start is not None), default=0.0)
    figure, axes = plt.subplots(figsize=(12, 1.2 + 0.6 * len(lanes)))
    for run in timed:
        assert run.start is not None
        y, left = lanes.index(rows[id(run)]), run.start - origin
        wait = run.duration_s - run.work_s
        if wait > 0:
            axes.barh(y, wait, left=left, height=0.6, color=colours[run.stage], alpha=0.35,
                      hatch="//", edgecolor="grey")
        axes.barh(y, run.work_s, left=left + wait, height=0.6, color=colours[run.stage],
                  edgecolor="black", linewidth=0.4)
        if run.attempts > 1:
            axes.text(left + run.duration_s, y, f" x{run.attempts}", va="center", fontsize=7)
    axes.set_yticks(range(len(lanes)), lanes, fontsize=8)
    axes.set_xlabel("seconds since the first stage started")
    axes.set_title(f"{len({r.job for r in runs})} job(s): one bar per stage run "
                   "(hatched: waiting for a worker)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[s]) for s in stages]
    if handles:
        axes.legend(handles, stages, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def packed_rows(runs: list[StageRun]) -> dict[int, str]:
    """A row label per run: its lane, split into as many rows as runs overlapped there."""
    ends: dict[str, list[float]] = defaultdict(list)
    rows = {}
    for run in runs:  # sorted by lane, then start
        assert run.start is not None
        slots = ends[run.lane]
        free = next((i for i, end in enumerate(slots) if end <= run.start), len(slots))
        if free == len(slots):
            slots.append(0.0)
        slots[free] = run.start + run.duration_s
        rows[id(run)] = run.lane if free == 0 else f"{run.lane} ({free + 1})"
    return rows


def write_report(targets: list[Path], out: Path) -> tuple[list[StageRow], list[Path]]:
    """report.png, report.json and any Ray timelines in `out`; returns the table and files."""
    folders = job_dirs(targets)
    runs = [run for folder in folders for run in stage_runs(folder)]
    rows = table(runs)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.png", out / "report.json"]
    draw_timeline(runs, written[0])
    written[1].write_text(json.dumps({
        "jobs": [str(f) for f in folders], "stages": [asdict(r) for r in rows],
        "runs": [asdict(r) for r in runs]}, indent=2) + "\n")
    for folder in folders:
        timeline = folder / "logs" / RAY_TIMELINE
        if timeline.is_file():
            copy = out / f"{folder.name}.{RAY_TIMELINE}"
            shutil.copyfile(timeline, copy)
            written.append(copy)
    return rows, written


def _timestamp(iso: str | None) -> float | None:
    return dt.datetime.fromisoformat(iso).timestamp() if iso else None


def row_cells(row: StageRow) -> list[Any]:
    return [row.stage, row.runs, row.cached, row.skipped, row.failed, row.retries,
            f"{row.seconds:.2f}", f"{row.audio_s:.1f}",
            f"{row.realtime_x:.1f}x" if row.realtime_x else "-", f"{row.model_load_s:.2f}"]
