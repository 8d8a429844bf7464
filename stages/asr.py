"""asr: speech to timed text in the film's own language, with word timings.

The faster-whisper backend (CTranslate2; no PyTorch) runs on CPU or GPU; WhisperX is the
batched GPU backend when the `ml` extra is installed. Whisper's translate task is never
used: subtitles in other languages come from the translation stage. The VAD regions reach
the model as clip timestamps, and the prompt and hotwords (cast names, glossary terms) as
decoding context. `asr.model` is a Whisper name (looked up in the local Hugging Face cache;
nothing is downloaded offline) or a local CTranslate2 model folder. The model loads once
per worker and serves every job.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bolly_ray.audio import SAMPLE_RATE, read_wav
from bolly_ray.errors import StageError, UsageError
from bolly_ray.spec import (
    ComputeKind,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)
from bolly_ray.transcript import Segment, Transcript, Word


class AsrSettings(StageSettings):
    backend: Literal["faster-whisper", "whisperx"] = "faster-whisper"
    model: str = Field(default="large-v3",
                       description="Whisper model name or a local CTranslate2 model folder")
    language: str | None = Field(default=None,
                                 description="Spoken language (default: the job's source)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = Field(default="auto",
                              description="CTranslate2 compute type (auto: float16 on GPU, "
                              "int8 on CPU)")
    beam_size: int = Field(default=5, ge=1, le=20)
    temperatures: list[float] = Field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    condition_on_previous_text: bool = Field(
        default=False, description="Off by default: it feeds repetition loops in songs")
    initial_prompt: str | None = None
    hotwords: list[str] = Field(default_factory=list, description="Names and terms to favour")
    cpu_threads: int = Field(default=0, ge=0, description="CPU threads (0: every core; Ray "
                             "would otherwise give a CPU actor one thread)")
    seed: int = Field(default=0, description="Seed of the temperature-fallback sampling, so "
                      "that a rerun transcribes the same way")


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def model_source(name: str) -> str:
    """A local model folder as an absolute path; a model name as it is."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise UsageError(f"asr.model={name}: no model.bin there (not a CTranslate2 model)")
        return str(path.resolve())
    if "/" in name or name.startswith("."):
        raise UsageError(f"asr.model={name}: no such model folder")
    return name


def load_whisper(settings: AsrSettings) -> Any:
    if settings.backend == "whisperx":
        raise UsageError("asr.backend=whisperx needs the ml extra: pip install 'bolly-ray[ml]'")
    from faster_whisper import WhisperModel

    device = resolve_device(settings.device)
    compute = settings.compute_type if settings.compute_type != "auto" else (
        "float16" if device == "cuda" else "int8")
    source = model_source(settings.model)
    try:
        return WhisperModel(source, device=device, compute_type=compute, local_files_only=True,
                            cpu_threads=settings.cpu_threads or os.cpu_count() or 1)
    except Exception as err:  # a missing download surfaces as several hub error types
        raise StageError(f"asr: cannot load model {settings.model!r} offline "
                         f"({type(err).__name__}); set asr.model to a local CTranslate2 "
                         "folder or fetch the model into the Hugging Face cache") from None


def clip_timestamps(speech: Path | None) -> list[float] | str:
    if speech is None:
        return "0"
    regions = json.loads(speech.read_text())["segments"]
    return [t for r in regions for t in (r["start"], r["end"])] or "0"


class AsrStage(Stage):
    spec = StageSpec(
        name="asr", inputs=("audio",), optional_inputs=("speech",), outputs=("transcript",),
        settings_model=AsrSettings, job_fields=("source_language",),
        compute=ComputeKind.GPU, resources=Resources(cpus=1, gpus=1, memory_mb=4096),
        image_requirements=("faster-whisper>=1.1",), timeout_s=6 * 3600, version="1")

    def resources(self, settings: AsrSettings,  # type: ignore[override]
                  gpus_available: float = 0.0) -> Resources:
        if settings.device == "cpu" or (settings.device == "auto" and gpus_available < 1):
            return Resources(cpus=2, gpus=0, memory_mb=4096)
        return self.spec.resources

    def model_id(self, settings: AsrSettings) -> str:  # type: ignore[override]
        source = model_source(settings.model)
        if Path(source).is_dir():
            config = (Path(source) / "config.json").read_bytes()
            source = f"{source}#{hashlib.sha256(config).hexdigest()[:12]}"
        return f"{settings.backend}:{source}:{settings.device}:{settings.compute_type}"

    def missing_models(self, settings: AsrSettings) -> list[str]:  # type: ignore[override]
        source = model_source(settings.model)
        if Path(source).is_dir() or settings.backend != "faster-whisper":
            return []
        from faster_whisper.utils import download_model

        try:
            download_model(source, local_files_only=True)
        except Exception:  # the hub raises several types for "not in the cache"
            return [f"asr: Whisper model {source!r} is not in the local model cache: run "
                    f"`bolly-ray models pull {source}`, or set asr.model to a local "
                    "CTranslate2 folder"]
        return []

    def load_model(self, settings: AsrSettings) -> Any:  # type: ignore[override]
        return load_whisper(settings)

    def run(self, ctx: StageContext, model: Any = None) -> StageResult:
        settings = ctx.settings
        assert isinstance(settings, AsrSettings)
        model = model if model is not None else load_whisper(settings)
        audio = read_wav(ctx.inputs["audio"])
        language = settings.language or ctx.job.get("source_language")
        import ctranslate2

        ctranslate2.set_random_seed(settings.seed)  # fallback decoding samples at random
        started = time.monotonic()
        pieces, info = model.transcribe(
            audio, language=language, task="transcribe", beam_size=settings.beam_size,
            temperature=settings.temperatures, word_timestamps=True, vad_filter=False,
            clip_timestamps=clip_timestamps(ctx.inputs.get("speech")),
            compression_ratio_threshold=settings.compression_ratio_threshold,
            log_prob_threshold=settings.log_prob_threshold,
            no_speech_threshold=settings.no_speech_threshold,
            condition_on_previous_text=settings.condition_on_previous_text,
            initial_prompt=settings.initial_prompt,
            hotwords=" ".join(settings.hotwords) or None)
        segments = [to_segment(p) for p in pieces if p.text.strip()]
        seconds = time.monotonic() - started
        Transcript(language=info.language, segments=segments).write(
            ctx.out_dir / "transcript.json")
        audio_s = len(audio) / SAMPLE_RATE
        return StageResult(outputs={"transcript": "transcript.json"}, metrics={
            "audio_s": round(audio_s, 3), "rtfx": round(audio_s / max(seconds, 1e-6), 2),
            "segments": len(segments)})


def to_segment(piece: Any) -> Segment:
    words = [Word(text=w.word.strip(), start=round(w.start, 3), end=round(max(w.end, w.start), 3),
                  confidence=min(1.0, max(0.0, w.probability)))
             for w in piece.words or [] if w.word.strip()]
    return Segment(start=round(piece.start, 3), end=round(max(piece.end, piece.start), 3),
                   text=piece.text.strip(), words=words,
                   confidence=round(min(1.0, math.exp(piece.avg_logprob)), 4),
                   avg_logprob=piece.avg_logprob,
                   compression_ratio=max(0.0, piece.compression_ratio),
                   no_speech_prob=min(1.0, max(0.0, piece.no_speech_prob)))
