"""How a run shows itself while it goes: a live rich display, plain log lines, JSON lines or
nothing.

The live display keeps one line per job (a bar of its stages done) and one line per stage
attempt in flight (runner, attempt, time since submission); each stage that ends is printed
once above it with node, runner, duration and audio seconds, so the scrollback is a record of
the run. It redraws from a background thread, so elapsed times move while the driver waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from bolly_ray.engine.events import (
    JobEvent,
    JsonLinesObserver,
    LoggingObserver,
    Observers,
    StageEvent,
)
from bolly_ray.engine.manifest import StageStatus

DONE = {StageStatus.SUCCEEDED, StageStatus.CACHED, StageStatus.SKIPPED, StageStatus.FAILED}
MARK = {StageStatus.SUCCEEDED: ("✓", "green"), StageStatus.CACHED: ("=", "cyan"),
        StageStatus.SKIPPED: ("-", "dim"), StageStatus.FAILED: ("✗", "red")}


class ProgressMode(StrEnum):
    AUTO = "auto"
    RICH = "rich"
    PLAIN = "plain"
    JSON = "json"
    NONE = "none"


@dataclass
class JobLine:
    stages: tuple[str, ...]
    done: set[str] = field(default_factory=set)
    running: dict[str, StageEvent] = field(default_factory=dict)


class LiveProgress:
    """The rich display; use it as a context manager around the run."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.jobs: dict[str, JobLine] = {}
        self._lock = threading.Lock()
        self._live = Live(console=console, refresh_per_second=4, transient=True,
                          get_renderable=self._render)

    def __enter__(self) -> LiveProgress:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def on_job(self, event: JobEvent) -> None:
        if event.status == "running":
            with self._lock:
                self.jobs[event.job_id] = JobLine(event.stages)
            return
        style = "green" if event.status == "succeeded" else "red"
        tail = f": {event.message}" if event.message else ""
        self.console.print(Text(f"job {event.job_id} {event.status}{tail}", style=style))

    def on_stage(self, event: StageEvent) -> None:
        with self._lock:
            line = self.jobs.setdefault(event.job_id, JobLine(()))
            if event.status == StageStatus.RUNNING:
                line.running[event.stage] = event
                return
            line.running.pop(event.stage, None)
            if event.status in DONE:
                line.done.add(event.stage)
        if event.status in DONE:
            self.console.print(finished_line(event))

    def _render(self) -> Group:
        with self._lock:
            table = Table.grid(padding=(0, 2))
            now = time.time()
            for job_id, line in self.jobs.items():
                total = max(len(line.stages), 1)
                table.add_row(Text(job_id, style="bold"),
                              ProgressBar(total=total, completed=len(line.done), width=24),
                              f"{len(line.done)}/{len(line.stages)} stages", "")
                for stage, event in line.running.items():
                    retry = f" attempt {event.attempt}" if event.attempt > 1 else ""
                    table.add_row(f"  {stage}", Text(f"running{retry}", style="yellow"),
                                  event.runner or "", f"{now - event.at:.0f} s")
            return Group(table)


def finished_line(event: StageEvent) -> Text:
    mark, style = MARK[event.status]
    parts = [f"{mark} {event.job_id} {event.stage} {event.status.value}"]
    if event.duration_s is not None:
        parts.append(f"{event.duration_s:.1f} s")
    if event.audio_s:
        speed = f", {event.audio_s / event.duration_s:.1f}x real time" if event.duration_s else ""
        parts.append(f"{event.audio_s:.1f} s of audio{speed}")
    if event.runner:
        parts.append(event.runner)
    if event.node:
        parts.append(f"node {event.node}")
    if event.attempt > 1:
        parts.append(f"attempt {event.attempt}")
    if event.message:
        parts.append(event.message)
    return Text(" · ".join(parts), style=style)


@contextmanager
def progress_observers(mode: ProgressMode, console: Console, json_stream: IO[str]
                       ) -> Iterator[Observers]:
    """The observers for this mode; AUTO is the live display on a terminal, else log lines.
    JSON events go to `json_stream` (the command's stdout: stderr carries what libraries say)."""
    if mode == ProgressMode.AUTO:
        mode = ProgressMode.RICH if console.is_terminal else ProgressMode.PLAIN
    if mode == ProgressMode.RICH:
        with LiveProgress(console) as live:
            yield Observers([live])
    elif mode == ProgressMode.JSON:
        yield Observers([JsonLinesObserver(json_stream)])
    elif mode == ProgressMode.PLAIN:
        yield Observers([LoggingObserver()])
    else:
        yield Observers()
