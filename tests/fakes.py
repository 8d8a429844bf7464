"""Tiny stages for executor and DAG tests: they copy, join, fail or stall on purpose.

Each fake writes text files, records every call in a shared list so tests can assert what
actually ran, and reads its behaviour from its settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from pydantic import Field

from bolly_ray.errors import MediaError, TransientStageError
from bolly_ray.spec import (
    ComputeKind,
    OptionalStageSettings,
    Resources,
    RetryPolicy,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)

CALLS: list[str] = []
LOADS: list[str] = []


class FakeSettings(StageSettings):
    suffix: str = ""
    fail: str = Field(default="", pattern="^(|permanent|transient|crash)$")
    fail_times: int = 99
    sleep_s: float = 0.0


class FakeOptionalSettings(FakeSettings, OptionalStageSettings):
    pass


class FakeStage(Stage):
    """Joins its inputs' text (in name order), appends its own name and suffix."""

    failures: dict[str, int]

    def run(self, ctx: StageContext, model: object = None) -> StageResult:
        settings: FakeSettings = ctx.settings  # type: ignore[assignment]
        CALLS.append(ctx.stage)
        self._maybe_fail(ctx.stage, settings)
        if settings.sleep_s:
            time.sleep(settings.sleep_s)
        text = "+".join(ctx.inputs[a].read_text() for a in sorted(ctx.inputs))
        outputs = {}
        for artifact in self.spec.outputs:
            name = f"{artifact}.txt"
            (ctx.out_dir / name).write_text(f"{text}>{ctx.stage}{settings.suffix}:{model}")
            outputs[artifact] = name
        return StageResult(outputs=outputs, metrics={"chars": len(text)})

    def _maybe_fail(self, stage: str, settings: FakeSettings) -> None:
        failed = self.failures.setdefault(stage, 0)
        if not settings.fail or failed >= settings.fail_times:
            return
        self.failures[stage] = failed + 1
        if settings.fail == "permanent":
            raise MediaError(f"{stage}: bad media on purpose")
        if settings.fail == "transient":
            raise TransientStageError(f"{stage}: lost a worker on purpose")
        raise ZeroDivisionError("a bug on purpose")


class FakeGpuStage(FakeStage):
    def load_model(self, settings: StageSettings) -> str:
        LOADS.append(self.spec.name)
        return f"model-{len(LOADS)}"


def fake(name: str, inputs: Iterable[str], outputs: Iterable[str], *,
         optional_inputs: Iterable[str] = (), critical: bool = True, gpu: bool = False,
         timeout_s: float = 30.0, max_attempts: int = 3) -> type[Stage]:
    spec = StageSpec(
        name=name, inputs=tuple(inputs), outputs=tuple(outputs),
        optional_inputs=tuple(optional_inputs),
        settings_model=FakeSettings if critical else FakeOptionalSettings,
        critical=critical, compute=ComputeKind.GPU if gpu else ComputeKind.CPU,
        resources=Resources(cpus=1, gpus=1 if gpu else 0, memory_mb=64),
        timeout_s=timeout_s, retry=RetryPolicy(max_attempts=max_attempts, backoff_s=0.01))
    base = FakeGpuStage if gpu else FakeStage
    return type(f"Fake_{name}", (base,), {"spec": spec, "failures": {}})


def fan_out_fan_in() -> list[type[Stage]]:
    """media -> a -> (b, c) -> d, with c optional and e hanging off b."""
    return [
        fake("a", ["media"], ["x"]),
        fake("b", ["x"], ["y"]),
        fake("c", ["x"], ["z"], critical=False),
        fake("d", ["y"], ["w"], optional_inputs=["z"]),
        fake("e", ["y"], ["v"]),
    ]


def read_output(job_dir: Path, manifest: dict, stage: str, artifact: str) -> str:
    return (job_dir / manifest["stages"][stage]["outputs"][artifact]["path"]).read_text()
