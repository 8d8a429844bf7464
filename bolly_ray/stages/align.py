"""align: word timings by wav2vec2 forced alignment (WhisperX), or the best there is without it.

With the `ml` extra and a wav2vec2 model for the transcript's language in the local cache,
each segment's text is force-aligned to the audio and every word gets its own start and
end. Otherwise the stage keeps the recogniser's word timings (faster-whisper has them) and,
for segments without any (WhisperX's recogniser gives none), spreads the words over the
segment in proportion to their length. Which of the three happened, and why, is written
into the transcript (`alignment`) and logged as a warning; `align.required=true` turns a
missing model into a preflight error instead.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import logging
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bolly_ray.core.model_cache import folders_for, hub_cache, torch_home
from bolly_ray.core.modules import installed
from bolly_ray.errors import StageError
from bolly_ray.spec import (
    ComputeKind,
    GpuStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.formats.transcript import (
    Alignment,
    ChecksTranscriptInputs,
    Segment,
    Transcript,
    Word,
    read_transcript,
)
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav, wav_samples
from bolly_ray.stages.support.devices import torch_device

log = logging.getLogger(__name__)


class AlignSettings(GpuStageSettings):
    model: str | None = Field(default=None, description="wav2vec2 model (torchaudio bundle, "
                              "Hugging Face name or local folder); default: WhisperX's choice "
                              "for the language")
    required: bool = Field(default=False, description="Fail in preflight when the wav2vec2 "
                           "model is missing, instead of keeping the recogniser's timings")


class AlignerUnavailable(Exception):
    """No wav2vec2 aligner for this language here; the message says why."""


class Aligners:
    """wav2vec2 models by language, loaded on first use and kept for later jobs."""

    def __init__(self, settings: AlignSettings) -> None:
        self.settings = settings
        self.loaded: dict[str, tuple[Any, dict[str, Any], str]] = {}

    def device(self) -> str:
        return torch_device(self.settings.device)

    def get(self, language: str) -> tuple[Any, dict[str, Any], str]:
        if language not in self.loaded:
            self.loaded[language] = self._load(language)
        return self.loaded[language]

    def _load(self, language: str) -> tuple[Any, dict[str, Any], str]:
        if not installed("whisperx"):
            raise AlignerUnavailable("WhisperX is not installed (pip install 'bolly-ray[ml]')")
        name = aligner_name(self.settings, language)
        if name is None:
            raise AlignerUnavailable(f"no wav2vec2 model is known for language {language!r} "
                                     "(set align.model)")
        import whisperx

        missing = AlignerUnavailable(
            f"wav2vec2 model {name!r} for {language!r} is not in the local cache; fetch it "
            "with `bolly-ray models pull JOB.json` where it can be downloaded")
        if not any_aligner_cached(self.settings) or not torchaudio_bundle_cached(name):
            raise missing  # torchaudio would download it: a run never does
        try:
            model, metadata = whisperx.load_align_model(
                language, self.device(), model_name=name, model_cache_only=True)
        except Exception:  # transformers raises OSError or ValueError for "not cached"
            raise missing from None
        return model, metadata, name


def any_aligner_cached(settings: AlignSettings) -> bool:
    """Whether WhisperX's own aligner can be here at all: a cached model with "wav2vec2" in
    its name (every aligner WhisperX knows has it). Looking costs a directory listing;
    finding out the exact model means importing WhisperX and PyTorch (seconds). A model
    the job names (a folder, any hub name) is looked for the long way."""
    if settings.model:
        return True
    caches = [hub_cache(), torch_home() / "hub" / "checkpoints"]
    return any("wav2vec2" in entry.name.lower()
               for cache in caches if cache.is_dir() for entry in cache.iterdir())


def torchaudio_bundle_cached(name: str) -> bool:
    """False only for a torchaudio pipeline whose checkpoint is not in torch's hub cache."""
    import torch
    import torchaudio

    bundle = getattr(torchaudio.pipelines, name, None)
    path = getattr(bundle, "_path", None)
    if path is None:
        return True  # not a torchaudio bundle: a Hugging Face name or a folder
    return (Path(torch.hub.get_dir()) / "checkpoints" / Path(path).name).is_file()


def aligner_name(settings: AlignSettings, language: str) -> str | None:
    if settings.model:
        path = Path(settings.model).expanduser()
        return str(path.resolve()) if path.is_dir() else settings.model
    torch_models, hub_models = whisperx_default_aligners()
    return torch_models.get(language) or hub_models.get(language)


@cache
def whisperx_default_aligners() -> tuple[dict[str, str], dict[str, str]]:
    """WhisperX's wav2vec2 model for each language (torchaudio bundles, Hugging Face names),
    read from its source: importing `whisperx.alignment` imports PyTorch, seconds spent
    only to learn a name."""
    spec = importlib.util.find_spec("whisperx.alignment")
    tables: dict[str, dict[str, str]] = {}
    if spec is not None and spec.origin:
        for node in ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if name.startswith("DEFAULT_ALIGN_MODELS_"):
                    with contextlib.suppress(ValueError):  # not a literal: imported below
                        tables[name] = ast.literal_eval(node.value)
    if len(tables) < 2:  # a WhisperX that builds its tables differently
        from whisperx.alignment import DEFAULT_ALIGN_MODELS_HF, DEFAULT_ALIGN_MODELS_TORCH

        return DEFAULT_ALIGN_MODELS_TORCH, DEFAULT_ALIGN_MODELS_HF
    return tables["DEFAULT_ALIGN_MODELS_TORCH"], tables["DEFAULT_ALIGN_MODELS_HF"]


class AlignStage(ChecksTranscriptInputs, Stage[AlignSettings]):
    spec = StageSpec(
        name="align", inputs=("raw_transcript", "audio"), outputs=("aligned_transcript",),
        settings_model=AlignSettings, job_fields=("source_language",),
        compute=ComputeKind.GPU, resources=Resources(cpus=1, gpus=0.5, memory_mb=3072),
        cpu_resources=Resources(cpus=1, gpus=0, memory_mb=3072),
        optional_requirements=("whisperx>=3.8",), timeout_s=3 * 3600, version="1")

    def model_id(self, settings: AlignSettings) -> str:
        return f"wav2vec2:{settings.model or 'whisperx-default'}:{settings.device}"

    def model_folders(self, settings: AlignSettings) -> list[Path]:
        return folders_for(settings.model, hub_cache(), torch_home())

    def missing_models(self, settings: AlignSettings) -> list[str]:
        if not settings.required:
            return []
        if not installed("whisperx"):
            return ["align: align.required is set but WhisperX is not installed: "
                    "pip install 'bolly-ray[ml]'"]
        return []  # the model is per language; a required one that fails to load fails the run

    def pull_models(self, settings: AlignSettings,
                    job: Mapping[str, Any]) -> list[str]:
        language = job.get("source_language")
        if not language or not installed("whisperx"):
            return []
        import whisperx

        name = aligner_name(settings, language)
        if name is None:
            return []
        whisperx.load_align_model(language, "cpu", model_name=name)
        return [f"align: wav2vec2 {name} for {language!r}"]

    def load_model(self, settings: AlignSettings) -> Aligners:
        return Aligners(settings)

    def run(self, ctx: StageContext[AlignSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        aligners = model if model is not None else Aligners(settings)
        transcript = read_transcript(ctx.inputs["raw_transcript"])
        try:
            aligned = force_align(transcript, ctx.inputs["audio"], aligners)
        except AlignerUnavailable as why:
            if settings.required:
                raise StageError(f"align: {why}") from None
            aligned = keep_recogniser_timings(transcript, str(why))
            ctx.log.warning("align: %s; using %s word timings instead", why,
                            "the recogniser's" if aligned.alignment and
                            aligned.alignment.method == "asr" else "estimated")
        aligned.write(ctx.out_dir / "transcript.json")
        words = sum(len(s.words) for s in aligned.segments)
        return StageResult(outputs={"aligned_transcript": "transcript.json"},
                           metrics={"audio_s": round(wav_samples(ctx.inputs["audio"])
                                                     / SAMPLE_RATE, 3),
                                    "words": words})


def force_align(transcript: Transcript, wav: Path, aligners: Aligners) -> Transcript:
    """wav2vec2 word timings, each segment by the aligner of its own language (a Hinglish
    film's English lines by the English one); the WAV is read only once every model needed
    is there to use."""
    groups: dict[str, list[int]] = {}
    for index, segment in enumerate(transcript.segments):
        groups.setdefault(segment.language or transcript.language, []).append(index)
    models = {language: aligners.get(language) for language in groups or [transcript.language]}
    names = ", ".join(name for _, _, name in models.values())
    if not transcript.segments:
        return transcript.model_copy(update={"alignment": Alignment(method="wav2vec2",
                                                                    model=names)})
    import whisperx

    audio, segments = read_wav(wav), list(transcript.segments)
    for language, indices in groups.items():
        model, metadata, _ = models[language]
        result = whisperx.align([{"start": segments[i].start, "end": segments[i].end,
                                  "text": segments[i].text} for i in indices],
                                model, metadata, audio, aligners.device(),
                                return_char_alignments=False)
        for index, aligned in zip(indices, result["segments"], strict=False):
            words = timed_words(aligned.get("words", []), segments[index])
            segments[index] = segments[index].model_copy(update={"words": words})
    return transcript.model_copy(update={
        "segments": segments, "alignment": Alignment(method="wav2vec2", model=names)})


def timed_words(found: list[dict[str, Any]], segment: Segment) -> list[Word]:
    """wav2vec2's words; one it could not place (digits, symbols) sits between its neighbours."""
    words: list[Word] = []
    for index, item in enumerate(found):
        text = str(item.get("word", "")).strip()
        if not text:
            continue
        start = item.get("start")
        if start is None:
            start = words[-1].end if words else segment.start
            later = next((w["start"] for w in found[index + 1:] if w.get("start") is not None),
                         segment.end)
            end = max(start, later)
        else:
            end = max(item.get("end", start), start)
        score = item.get("score")
        words.append(Word(text=text, start=round(start, 3), end=round(end, 3),
                          confidence=None if score is None else min(1.0, max(0.0, score))))
    return words


def keep_recogniser_timings(transcript: Transcript, reason: str) -> Transcript:
    """The recogniser's word timings, estimated ones for segments that have none."""
    estimated = any(s.text.strip() and not s.words for s in transcript.segments)
    segments = [s if s.words else s.model_copy(update={"words": spread_words(s)})
                for s in transcript.segments]
    method: Literal["asr", "estimated"] = "estimated" if estimated else "asr"
    return transcript.model_copy(update={
        "segments": segments, "alignment": Alignment(method=method, reason=reason)})


def spread_words(segment: Segment) -> list[Word]:
    """Words laid over the segment in proportion to their length (plus one for the gap)."""
    texts = segment.text.split()
    total = sum(len(t) + 1 for t in texts) or 1
    span = segment.end - segment.start
    words, cursor = [], segment.start
    for text in texts:
        end = cursor + span * (len(text) + 1) / total
        words.append(Word(text=text, start=round(cursor, 3), end=round(end, 3)))
        cursor = end
    return words
