"""A third-party stage, found through the `bolly_ray.stages` entry point.

`slowcopy` copies the demuxed audio in two halves with a pause between them, so a test can
kill a run in the middle of a stage that has already written part of its output.
"""

from __future__ import annotations

import os
import time

from pydantic import Field

from bolly_ray.spec import OptionalStageSettings, Stage, StageContext, StageResult, StageSpec


class SlowCopySettings(OptionalStageSettings):
    pause_s: float = Field(default=0.0, ge=0)


class SlowCopyStage(Stage):
    spec = StageSpec(name="slowcopy", inputs=("audio",), outputs=("audio_copy",),
                     settings_model=SlowCopySettings, critical=False, version="1")

    def run(self, ctx: StageContext, model: object = None) -> StageResult:
        data = ctx.inputs["audio"].read_bytes()
        out = ctx.out_dir / "copy.wav"
        with out.open("wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(ctx.settings.pause_s)  # type: ignore[attr-defined]
            f.write(data[len(data) // 2:])
        visible = sum(var in os.environ for var in ("TMDB_API_KEY", "TMDB_READ_TOKEN", "HF_TOKEN"))
        return StageResult(outputs={"audio_copy": "copy.wav"},
                           metrics={"secret_env_vars": float(visible)})
