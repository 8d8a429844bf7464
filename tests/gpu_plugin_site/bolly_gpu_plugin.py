"""A GPU-kind stage for cluster tests: it "loads a model" once per actor and copies audio.

With `device: cpu` it asks for no GPU, the way a real model stage does when a user runs it
on a machine without one.
"""

from __future__ import annotations

import os
import time
from typing import Literal

from pydantic import Field

from bolly_ray.spec import (
    ComputeKind,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)

SECRET_VARS = ("TMDB_API_KEY", "TMDB_READ_TOKEN", "HF_TOKEN")
"""Reported as a metric: a stage that did not declare them must never see them."""


class GpuCopySettings(StageSettings):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    pause_s: float = Field(default=0.0, ge=0)


class GpuCopyStage(Stage[GpuCopySettings]):
    spec = StageSpec(name="gpucopy", inputs=("audio",), outputs=("audio_gpu",),
                     settings_model=GpuCopySettings, compute=ComputeKind.GPU,
                     resources=Resources(cpus=1, gpus=1), version="1")

    def resources(self, settings: GpuCopySettings,
                  gpus_available: float = 0.0) -> Resources:
        return Resources(cpus=1, gpus=0) if settings.device == "cpu" else self.spec.resources

    def model_id(self, settings: GpuCopySettings) -> str:
        return "copy-model@1"

    def load_model(self, settings: GpuCopySettings) -> str:
        return f"loaded in pid {os.getpid()}"

    def run(self, ctx: StageContext[GpuCopySettings], model: object = None) -> StageResult:
        time.sleep(ctx.settings.pause_s)
        out = ctx.out_dir / "gpu.wav"
        out.write_bytes(ctx.inputs["audio"].read_bytes())
        return StageResult(outputs={"audio_gpu": "gpu.wav"},
                           metrics={"cuda_visible": float(bool(os.environ.get(
                               "CUDA_VISIBLE_DEVICES"))),
                                    "hf_hub_offline": float(os.environ.get(
                                        "HF_HUB_OFFLINE") == "1"),
                                    "secret_env_vars": float(sum(
                                        var in os.environ for var in SECRET_VARS))})
