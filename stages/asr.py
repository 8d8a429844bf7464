"""asr: speech to timed text in the film's own language.

Two backends (whisper_backends.py): faster-whisper (CTranslate2; no PyTorch; CPU or GPU,
word timings of its own) and WhisperX (the `ml` extra; batched on GPU; word timings come
from the align stage). A GPU out-of-memory error halves the batch and tries again.
Whisper's translate task is never used: subtitles in other languages come from the
translation stage. The VAD regions are what the model decodes, and the prompt and
hotwords (cast names, glossary terms) its decoding context. `asr.model` is a Whisper name
(looked up in the local Hugging Face cache; nothing is downloaded offline) or a local
CTranslate2 model folder. The model loads once per worker and serves every job.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bolly_ray.audio import SAMPLE_RATE, read_wav
from bolly_ray.devices import device_resources
from bolly_ray.errors import UsageError
from bolly_ray.gpu_memory import with_batch_halving
from bolly_ray.modules import installed
from bolly_ray.spec import (
    ComputeKind,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)
from bolly_ray.stages.glossary import Glossary
from bolly_ray.stages.vad import read_speech
from bolly_ray.stages.whisper_backends import FasterWhisper, WhisperX, load_backend
from bolly_ray.transcript import Transcript

MAX_HOTWORDS = 60  # Whisper's prompt holds 224 tokens; names are several tokens each


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
    glossary_hotwords: Literal["names", "all", "none"] = Field(
        default="names", description="Glossary entries added to the hotwords: the cast, "
        "character and film names, every term, or none")
    batch_size: int = Field(default=1, ge=1, le=256, description="Windows decoded together "
                            "(1: faster-whisper decodes in order with word timings; prepare "
                            "sets 4-16 on GPUs); halved on GPU out-of-memory")


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


def load_whisper(settings: AsrSettings) -> FasterWhisper | WhisperX:
    return load_backend(settings, model_source(settings.model), resolve_device(settings.device))


def with_glossary(settings: AsrSettings, glossary: Path | None) -> AsrSettings:
    """The settings with the glossary's names (or terms) appended to the hotwords."""
    if glossary is None or settings.glossary_hotwords == "none":
        return settings
    found = Glossary.read(glossary)
    if settings.glossary_hotwords == "names":
        found = Glossary(terms=found.names())
    words = list(dict.fromkeys([*settings.hotwords, *found.hotwords(MAX_HOTWORDS)]))
    return settings.model_copy(update={"hotwords": words[:MAX_HOTWORDS]})


class AsrStage(Stage):
    spec = StageSpec(
        name="asr", inputs=("audio",), optional_inputs=("speech", "glossary"),
        outputs=("raw_transcript",),
        settings_model=AsrSettings, job_fields=("source_language",),
        compute=ComputeKind.GPU, resources=Resources(cpus=1, gpus=1, memory_mb=4096),
        image_requirements=("faster-whisper>=1.1",), timeout_s=6 * 3600, version="2")

    def resources(self, settings: AsrSettings,  # type: ignore[override]
                  gpus_available: float = 0.0) -> Resources:
        return device_resources(settings.device, gpus_available, self.spec.resources,
                                Resources(cpus=2, gpus=0, memory_mb=4096))

    def model_id(self, settings: AsrSettings) -> str:  # type: ignore[override]
        source = model_source(settings.model)
        if Path(source).is_dir():
            config = (Path(source) / "config.json").read_bytes()
            source = f"{source}#{hashlib.sha256(config).hexdigest()[:12]}"
        return f"{settings.backend}:{source}:{settings.device}:{settings.compute_type}"

    def missing_models(self, settings: AsrSettings) -> list[str]:  # type: ignore[override]
        missing = []
        if settings.backend == "whisperx" and not installed("whisperx"):
            missing.append("asr: backend whisperx needs the ml extra: "
                           "pip install 'bolly-ray[ml]'")
        source = model_source(settings.model)
        if Path(source).is_dir():
            return missing
        from faster_whisper.utils import download_model

        try:
            download_model(source, local_files_only=True)
        except Exception:  # the hub raises several types for "not in the cache"
            missing.append(f"asr: Whisper model {source!r} is not in the local model cache: "
                           f"run `bolly-ray models pull {source}`, or set asr.model to a local "
                           "CTranslate2 folder")
        return missing

    def pull_models(self, settings: AsrSettings,  # type: ignore[override]
                    job: Mapping[str, Any]) -> list[str]:
        source = model_source(settings.model)
        if Path(source).is_dir():
            return []
        from faster_whisper.utils import download_model

        return [f"asr: Whisper {source}: {download_model(source)}"]

    def load_model(self, settings: AsrSettings) -> Any:  # type: ignore[override]
        return load_whisper(settings)

    def run(self, ctx: StageContext, model: Any = None) -> StageResult:
        settings = ctx.settings
        assert isinstance(settings, AsrSettings)
        backend = model if model is not None else load_whisper(settings)
        audio = read_wav(ctx.inputs["audio"])
        language = settings.language or ctx.job.get("source_language")
        regions = read_speech(ctx.inputs.get("speech"))  # None: no vad, transcribe it all
        settings = with_glossary(settings, ctx.inputs.get("glossary"))
        import ctranslate2

        ctranslate2.set_random_seed(settings.seed)  # fallback decoding samples at random
        started = time.monotonic()
        if regions == []:  # VAD heard nobody: nothing to transcribe, nothing to hallucinate
            (segments, language), batch = ([], language or "und"), settings.batch_size
        else:
            (segments, language), batch = with_batch_halving(
                lambda size: backend.transcribe(audio, regions, language, settings, size),
                settings.batch_size, what="asr")
        seconds = time.monotonic() - started
        Transcript(language=language, segments=segments).write(ctx.out_dir / "transcript.json")
        audio_s = len(audio) / SAMPLE_RATE
        return StageResult(outputs={"raw_transcript": "transcript.json"}, metrics={
            "audio_s": round(audio_s, 3), "rtfx": round(audio_s / max(seconds, 1e-6), 2),
            "segments": len(segments), "batch_size": batch})
