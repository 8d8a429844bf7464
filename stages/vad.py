"""vad: where people speak, from the Silero VAD model.

The Silero v6 ONNX model ships inside faster-whisper's wheel, so this runs offline, on CPU,
without PyTorch. Speech regions closer than `merge_gap_s` are merged (dialogue with short
pauses stays one region) and each is padded; the result is a JSON list of regions in
seconds that ASR uses to skip silence and songs' instrumental stretches.
"""

from __future__ import annotations

import json

from pydantic import Field

from bolly_ray.audio import SAMPLE_RATE, read_wav
from bolly_ray.spec import (
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)

MODEL = "silero-vad-v6 (onnx, from faster-whisper)"


class VadSettings(OptionalStageSettings):
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Speech probability cut-off")
    min_speech_ms: int = Field(default=250, ge=0, description="Drop shorter speech")
    min_silence_ms: int = Field(default=500, ge=0, description="Silence that ends a region")
    speech_pad_ms: int = Field(default=200, ge=0, description="Padding on each side")
    max_speech_s: float = Field(default=30.0, gt=0, description="Split longer regions")
    merge_gap_s: float = Field(default=0.3, ge=0, description="Merge regions this close")


def merge(regions: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in regions:
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class VadStage(Stage):
    spec = StageSpec(
        name="vad", inputs=("audio",), outputs=("speech",), settings_model=VadSettings,
        resources=Resources(cpus=1, memory_mb=1024), critical=False,
        image_requirements=("faster-whisper>=1.1",), version="1")

    def model_id(self, settings: object) -> str:
        return MODEL

    def run(self, ctx: StageContext, model: object = None) -> StageResult:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        settings = ctx.settings
        assert isinstance(settings, VadSettings)
        audio = read_wav(ctx.inputs["audio"])
        options = VadOptions(threshold=settings.threshold,
                             min_speech_duration_ms=settings.min_speech_ms,
                             min_silence_duration_ms=settings.min_silence_ms,
                             speech_pad_ms=settings.speech_pad_ms,
                             max_speech_duration_s=settings.max_speech_s)
        found = get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)
        regions = merge([(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in found],
                        settings.merge_gap_s)
        speech_s = sum(end - start for start, end in regions)
        (ctx.out_dir / "speech.json").write_text(json.dumps({
            "model": MODEL, "audio_s": round(len(audio) / SAMPLE_RATE, 3),
            "speech_s": round(speech_s, 3),
            "segments": [{"start": round(s, 3), "end": round(e, 3)} for s, e in regions],
        }, indent=2) + "\n")
        return StageResult(outputs={"speech": "speech.json"},
                           metrics={"audio_s": round(len(audio) / SAMPLE_RATE, 3),
                                    "speech_s": round(speech_s, 3), "regions": len(regions)})
