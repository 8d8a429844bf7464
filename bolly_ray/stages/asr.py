"""asr: speech to timed text in the film's own language.

Two backends (whisper_backends.py): faster-whisper (CTranslate2; no PyTorch; CPU or GPU,
word timings of its own) and WhisperX (the `ml` extra; batched on GPU; word timings come
from the align stage). A GPU out-of-memory error halves the batch and tries again.
Whisper's translate task is never used: subtitles in other languages come from the
translation stage. The VAD regions are what the model decodes, and the prompt and
hotwords (cast names, glossary terms) its decoding context. `asr.model` is a Whisper name
(looked up in the local Hugging Face cache; nothing is downloaded offline) or a local
CTranslate2 model folder. The model loads once per worker and serves every job. A film
longer than a few minutes is decoded in spans read one at a time from the WAV: runs of
nearby regions, never the silence between them, so memory does not grow with the film; a
region too long for one call is cut into pieces that overlap, stitched where both pieces
heard the same pause so that no word is lost or repeated.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from bolly_ray.core.hardware import HardwareProfile, detect_profile
from bolly_ray.core.model_cache import folders_for, hub_cache
from bolly_ray.core.modules import installed
from bolly_ray.errors import UsageError
from bolly_ray.spec import (
    ComputeKind,
    GpuStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.formats.glossary import Glossary
from bolly_ray.stages.formats.regions import Region, intersect, read_speech
from bolly_ray.stages.formats.transcript import Segment, Transcript
from bolly_ray.stages.spoken_languages import (
    RegionLanguage,
    call_at,
    dominant,
    identify,
    language_runs,
    one_language,
    settle,
)
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav_span, wav_samples
from bolly_ray.stages.support.devices import fitted_device
from bolly_ray.stages.support.gpu_memory import with_batch_halving
from bolly_ray.stages.support.packaged_models import PACKAGES, packaged_model
from bolly_ray.stages.whisper_backends import WINDOW_S, FasterWhisper, WhisperX, load_backend

MAX_HOTWORDS = 60  # Whisper's prompt holds 224 tokens; names are several tokens each
SPAN_S = 300.0  # audio per model call on a long film: bounds samples and features in memory
SPAN_GAP_S = 10.0  # a longer silence between regions ends a span (it is never read)
SPAN_PAD_S = 1.0  # audio read on each side of a span's regions, so no feature sees an edge
OVERLAP_S = 2.0  # pieces of a hard-split region overlap this much; words are stitched in it
HOP_S = 0.01  # Whisper's feature hop: a span starting on it sees the whole file's frames
MULTILINGUAL_VOCABULARY = 51_865  # Whisper's tokens with the 99 language tokens
LANGUAGE_WINDOW_S = 30.0  # without VAD regions, languages are told apart window by window
FITTED = ("backend", "model", "device", "compute_type", "batch_size")  # auto, fitted per run


class AsrSettings(GpuStageSettings):
    backend: Literal["auto", "faster-whisper", "whisperx"] = Field(
        default="faster-whisper", description="auto: whisperx on a GPU when it is installed, "
        "else faster-whisper")
    model: str = Field(default="large-v3",
                       description="Whisper model name or a local CTranslate2 model folder; "
                       "auto: what fits the hardware that runs asr (large-v3 from 6 GB of "
                       "VRAM, medium from 4 GB, else base)")
    language: str | None = Field(
        default=None, pattern=r"^([a-z]{2,3}|auto|mixed)$",
        description="Spoken language: a code; auto: Whisper identifies one language from the "
        "speech; mixed: Whisper identifies each VAD region's language and decodes it in that "
        "language (Hinglish); auto and mixed need a multilingual model (default: the job's "
        "source language)")
    candidate_languages: list[str] = Field(
        default_factory=list, description="With auto or mixed: only these languages are "
        "considered, e.g. [hi, en] for Hinglish (Whisper often calls Hindi Urdu); empty: all")
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
    seed: int = Field(default=0, description="Seed of the temperature-fallback sampling, "
                      "set before every job; a warm model that sampled is loaded anew first "
                      "(CTranslate2 never reseeds its decoding threads), so the same audio "
                      "and settings give the same transcript on a fresh or a warm worker")
    glossary_hotwords: Literal["names", "all", "none"] = Field(
        default="names", description="Glossary entries added to the hotwords: the cast, "
        "character and film names, every term, or none")
    batch_size: int | Literal["auto"] = Field(
        default=1, description="Windows decoded together, 1 to 256 (1: faster-whisper decodes "
        "in order with word timings; auto: 4-16 on a GPU, by its memory, 1 on CPU); halved "
        "on GPU out-of-memory")

    @field_validator("batch_size")
    @classmethod
    def _batch_range(cls, size: int | str) -> int | str:
        if isinstance(size, int) and not 1 <= size <= 256:
            raise ValueError("must be from 1 to 256, or auto")
        return size

    @field_validator("candidate_languages")
    @classmethod
    def _language_codes(cls, codes: list[str]) -> list[str]:
        lowered = [code.strip().lower() for code in codes]
        wrong = [code for code in lowered if not re.fullmatch(r"[a-z]{2,3}", code)]
        if wrong:
            raise ValueError(f"not a Whisper language code: {', '.join(wrong)} (e.g. hi, en)")
        return lowered


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def fit_asr(settings: AsrSettings, profile: HardwareProfile) -> AsrSettings:
    """Every `auto` among backend, model, device, compute type and batch size as the
    hardware profile recommends for the device (a set device is kept, and fitted to)."""
    device = fitted_device(settings.device, profile)
    advice = profile.recommendation_for(device) | {"device": device}
    update = {name: advice[name] for name in FITTED if getattr(settings, name) == "auto"}
    return settings.model_copy(update=update) if update else settings


def model_source(name: str) -> str:
    """A local model folder as an absolute path; the folder of a model a package ships
    (tiny.en, base) when that package is installed; any other model name as it is."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise UsageError(f"asr.model={name}: no model.bin there (not a CTranslate2 model)")
        return str(path.resolve())
    if "/" in name or name.startswith("."):
        raise UsageError(f"asr.model={name}: no such model folder")
    packaged = packaged_model(name)
    return str(packaged) if packaged else name


def english_only(source: str) -> bool:
    """Whether a Whisper model knows English only: a `.en` name, or a folder whose
    vocabulary lacks the language tokens (Whisper's own test: fewer than 51,865 tokens)."""
    vocabulary = Path(source) / "vocabulary.txt"
    if vocabulary.is_file():
        with vocabulary.open(encoding="utf-8") as lines:
            return sum(1 for _ in lines) < MULTILINGUAL_VOCABULARY
    return source.endswith(".en")


def english_only_problem(settings: AsrSettings) -> str:
    return (f"asr.language={settings.language} needs a multilingual Whisper model: "
            f"{settings.model} knows English only (base, small, large-v3 know 99 languages)")


def fitted_here(settings: AsrSettings) -> AsrSettings:
    """Settings no executor fitted (the stage called as a library) fitted to this machine;
    a device or compute type left auto is resolved when the model loads."""
    if "auto" not in (settings.backend, settings.model, settings.batch_size):
        return settings
    return fit_asr(settings, detect_profile())


def load_whisper(settings: AsrSettings) -> FasterWhisper | WhisperX:
    settings = fitted_here(settings)
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


@dataclass(frozen=True)
class Span:
    """One model call: the audio from `start` to `end` (seconds in the file) and the clips
    the model decodes in it (file seconds); `vad` False when there were no VAD regions and
    the backend decodes (or finds speech in) all of it."""

    start: float
    end: float
    clips: tuple[Region, ...]
    vad: bool = True


def hard_split(regions: Sequence[Region], limit_s: float, overlap_s: float = OVERLAP_S
               ) -> list[Region]:
    """Regions longer than `limit_s` cut into equal pieces that overlap by `overlap_s`."""
    pieces: list[Region] = []
    for start, end in regions:
        parts = max(1, math.ceil((end - start - overlap_s) / (limit_s - overlap_s) - 1e-9))
        step = (end - start - overlap_s) / parts if parts > 1 else end - start
        pieces += [(start + i * step, min(end, start + (i + 1) * step + overlap_s))
                   for i in range(parts)]
    return pieces


def plan_spans(regions: list[Region] | None, audio_s: float, piece_s: float,
               span_s: float, overlap_s: float = OVERLAP_S) -> list[Span]:
    """The model calls for a file: one for all of it when it is short (as it always was),
    else runs of nearby regions; overlapping pieces of a hard split are separate calls."""
    short = audio_s <= span_s
    limit = span_s if short else span_s - 2 * SPAN_PAD_S
    pieces = hard_split(regions if regions is not None else [(0.0, audio_s)],
                        min(piece_s, limit), overlap_s)
    groups: list[list[Region]] = []
    for piece in pieces:
        last = groups[-1] if groups else None
        if (last is None or piece[0] < last[-1][1] or (not short and (
                piece[1] - last[0][0] > limit or piece[0] - last[-1][1] > SPAN_GAP_S))):
            groups.append([piece])
        else:
            last.append(piece)
    if short:
        return [Span(0.0, audio_s, tuple(g), regions is not None) for g in groups]
    pad = SPAN_PAD_S if regions is not None else 0.0  # without VAD a span decodes all it reads
    return [Span(on_hop(max(0.0, g[0][0] - pad)), min(audio_s, g[-1][1] + pad), tuple(g),
                 regions is not None) for g in groups]


def on_hop(seconds: float) -> float:
    return round(math.floor(seconds / HOP_S + 1e-6) * HOP_S, 2)


def shifted(segment: Segment, offset: float) -> Segment:
    if not offset:
        return segment
    return segment.model_copy(update={
        "start": round(segment.start + offset, 3), "end": round(segment.end + offset, 3),
        "words": [w.model_copy(update={"start": round(w.start + offset, 3),
                                       "end": round(w.end + offset, 3)})
                  for w in segment.words]})


def heard(segments: Sequence[Segment]) -> list[Region]:
    """The stretches with a word in them (segments, where there are no word timings)."""
    return sorted(region for s in segments for region in timings(s))


def timings(segment: Segment) -> list[Region]:
    return [(w.start, w.end) for w in segment.words] or [(segment.start, segment.end)]


def pauses(segments: Sequence[Segment], lo: float, hi: float) -> list[Region]:
    found, at = [], lo
    for start, end in heard(segments):
        if start > at:
            found.append((at, min(start, hi)))
        at = max(at, end)
    return [(a, b) for a, b in [*found, (at, hi)] if b > a]


def cut_point(left: Sequence[Segment], right: Sequence[Segment], lo: float, hi: float
              ) -> float:
    """Where two overlapping pieces hand over: the middle of the longest pause both pieces
    heard inside the overlap [lo, hi], so that a word's timing, which differs a little from
    one piece to the other, never decides which piece it belongs to."""
    both = intersect(pauses(left, lo, hi), pauses(right, lo, hi))
    if not both:
        return (lo + hi) / 2
    start, end = max(both, key=lambda p: p[1] - p[0])
    return (start + end) / 2


def trimmed(segments: Sequence[Segment], lo: float, hi: float) -> list[Segment]:
    """The segments, keeping only the words whose middle lies in [lo, hi)."""
    kept = []
    for segment in segments:
        inside = [w for w in segment.words if lo <= (w.start + w.end) / 2 < hi]
        if not segment.words:
            if lo <= (segment.start + segment.end) / 2 < hi:
                kept.append(segment)
        elif len(inside) == len(segment.words):
            kept.append(segment)
        elif inside:
            kept.append(segment.model_copy(update={
                "start": inside[0].start, "end": inside[-1].end, "words": inside,
                "text": " ".join(w.text for w in inside)}))
    return kept


def stitch(decoded: Sequence[tuple[Span, list[Segment]]]) -> list[Segment]:
    """The spans' segments in order, with each overlap of a hard split handed over once."""
    bounds = [(-math.inf, math.inf) for _ in decoded]
    for i, ((left, first), (right, second)) in enumerate(itertools.pairwise(decoded)):
        lo, hi = right.clips[0][0], left.clips[-1][1]
        if hi > lo:  # two pieces of one region
            cut = cut_point(first, second, lo, hi)
            bounds[i], bounds[i + 1] = (bounds[i][0], cut), (cut, math.inf)
    return [segment for (_, segments), (lo, hi) in zip(decoded, bounds, strict=True)
            for segment in trimmed(segments, lo, hi)]


def split_rule(settings: AsrSettings) -> tuple[float, float]:
    """The longest piece one call may decode, and how much hard-split pieces overlap.

    Batched faster-whisper gets pieces of one window (its own cut inside a call could not
    be stitched); WhisperX gives no word timings to stitch by, so its pieces do not overlap.
    """
    if settings.backend == "whisperx":
        return math.inf, 0.0
    return (WINDOW_S if fitted_batch(settings) > 1 else math.inf), OVERLAP_S


def fitted_batch(settings: AsrSettings) -> int:
    """The batch size: a number once fitted, and every run fits its settings first."""
    if settings.batch_size == "auto":
        raise RuntimeError("asr: batch_size=auto reached decoding unfitted (fit_asr fits it)")
    return settings.batch_size


class AsrStage(Stage[AsrSettings]):
    spec = StageSpec(
        name="asr", inputs=("audio",), optional_inputs=("speech", "glossary"),
        outputs=("raw_transcript",),
        settings_model=AsrSettings, job_fields=("source_language",),
        compute=ComputeKind.GPU, resources=Resources(cpus=1, gpus=1, memory_mb=4096),
        cpu_resources=Resources(cpus=2, gpus=0, memory_mb=4096),
        image_requirements=("faster-whisper>=1.1", "threadpoolctl>=3"),
        # CTranslate2 4.x runs on CUDA 12 with cuDNN 9; it finds them on the loader's path
        gpu_image_requirements=("nvidia-cublas-cu12>=12.4,<13", "nvidia-cudnn-cu12>=9,<10"),
        cuda_library_dirs=("nvidia/cublas/lib", "nvidia/cudnn/lib"),
        timeout_s=6 * 3600, version="4")

    def fit_settings(self, settings: AsrSettings,
                     profile: HardwareProfile) -> AsrSettings:
        return fit_asr(settings, profile)

    def model_id(self, settings: AsrSettings) -> str:
        source = model_source(settings.model)
        if Path(source).is_dir():
            config = (Path(source) / "config.json").read_bytes()
            source = f"{source}#{hashlib.sha256(config).hexdigest()[:12]}"
        return f"{settings.backend}:{source}:{settings.device}:{settings.compute_type}"

    def model_folders(self, settings: AsrSettings) -> list[Path]:
        return folders_for(model_source(settings.model), hub_cache())

    def settings_here(self, settings: AsrSettings) -> AsrSettings:
        return settings.model_copy(update={"model": model_source(settings.model)})

    def missing_models(self, settings: AsrSettings) -> list[str]:
        missing = []
        if settings.backend == "whisperx" and not installed("whisperx"):
            missing.append("asr: backend whisperx needs the ml extra: "
                           "pip install 'bolly-ray[ml]'")
        source = model_source(settings.model)
        if settings.language in ("auto", "mixed") and english_only(source):
            raise UsageError(english_only_problem(settings))  # no model would fix the job
        if Path(source).is_dir():
            return missing
        from faster_whisper.utils import download_model

        try:
            download_model(source, local_files_only=True)
        except Exception:  # the hub raises several types for "not in the cache"
            shipped = f", or pip install {PACKAGES[source]}" if source in PACKAGES else ""
            missing.append(f"asr: Whisper model {source!r} is not in the local model cache: "
                           f"run `bolly-ray models pull {source}`{shipped}, or set asr.model to "
                           "a local CTranslate2 folder")
        return missing

    def pull_models(self, settings: AsrSettings,
                    job: Mapping[str, Any]) -> list[str]:
        source = model_source(settings.model)
        if Path(source).is_dir():
            return []
        from faster_whisper.utils import download_model

        return [f"asr: Whisper {source}: {download_model(source)}"]

    def load_model(self, settings: AsrSettings) -> Any:
        return load_whisper(settings)

    def run(self, ctx: StageContext[AsrSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        settings = fitted_here(settings)
        backend = model if model is not None else load_whisper(settings)
        audio_s = wav_samples(ctx.inputs["audio"]) / SAMPLE_RATE
        regions = read_speech(ctx.inputs.get("speech"))  # None: no vad, transcribe it all
        settings = with_glossary(settings, ctx.inputs.get("glossary"))
        backend.seed(settings.seed)  # fallback decoding samples at random
        started = time.monotonic()
        declared = ctx.job.get("source_language")
        requested = settings.language or declared
        from threadpoolctl import threadpool_limits  # here: every stage image imports asr.py

        # numpy's BLAS (Whisper's mel features) sums in another order with another thread
        # count, and the decoder then hears other numbers: one thread everywhere, so a Ray
        # actor (which Ray gives one), a container and a shell write the same transcript
        with threadpool_limits(limits=1, user_api="blas"):
            plan = plan_languages(backend, ctx.inputs["audio"], regions, audio_s, requested,
                                  settings)
            segments, language, batch, spans = transcribe_plan(backend, ctx.inputs["audio"],
                                                               plan, audio_s, settings)
        language = transcript_language(language, requested, declared)
        seconds = time.monotonic() - started
        Transcript(language=language, segments=segments).write(ctx.out_dir / "transcript.json")
        return StageResult(outputs={"raw_transcript": "transcript.json"}, metrics={
            "audio_s": round(audio_s, 3), "rtfx": round(audio_s / max(seconds, 1e-6), 2),
            "segments": len(segments), "batch_size": batch, "spans": spans,
            "languages": len({s.language for s in segments} - {None}) or 1})


def transcript_language(heard: str | None, requested: str | None, declared: str | None
                        ) -> str:
    """The transcript's language: with `mixed`, the film's declared language (its segments
    carry their own, and translate and align follow them); otherwise what was decoded, or
    the declared language where nothing was heard."""
    if requested == "mixed" and declared:
        return declared
    if heard and heard != "und":
        return heard
    return declared or "und"


@dataclass(frozen=True)
class LanguagePlan:
    """What to decode in which language, in order: (language or None for Whisper's own
    guess, the regions or None for all of the audio); and each region's identified
    language (empty when the job named the language)."""

    runs: list[tuple[str | None, list[Region] | None]]
    calls: list[RegionLanguage]


def plan_languages(backend: FasterWhisper | WhisperX, wav: Path, regions: list[Region] | None,
                   audio_s: float, requested: str | None, settings: AsrSettings
                   ) -> LanguagePlan:
    """The job's language for everything, or with `auto`/`mixed` Whisper's language
    identification on each region (spoken_languages.py)."""
    if requested not in ("auto", "mixed") or regions == []:
        return LanguagePlan([(requested if requested not in ("auto", "mixed") else None,
                              regions)], [])
    if not backend.multilingual:
        raise UsageError(english_only_problem(settings.model_copy(
            update={"language": requested})))
    stretches = regions if regions is not None else [
        (start, min(audio_s, start + LANGUAGE_WINDOW_S))
        for start in itertools.takewhile(lambda t: t < audio_s,
                                         itertools.count(0.0, LANGUAGE_WINDOW_S))]
    calls = settle(identify(wav, stretches, backend.language_probabilities,
                            settings.candidate_languages))
    if requested == "auto":
        calls = one_language(calls)
        return LanguagePlan([(calls[0].language, regions)], calls)
    return LanguagePlan(list(language_runs(calls)), calls)


def transcribe_plan(backend: FasterWhisper | WhisperX, wav: Path, plan: LanguagePlan,
                    audio_s: float, settings: AsrSettings
                    ) -> tuple[list[Segment], str, int, int]:
    """The segments of every run (in time order, each labelled with its language where it
    was identified), the transcript's language, the batch size that fitted, the spans."""
    piece_s, overlap_s = split_rule(settings)
    segments, batch, count, heard = [], fitted_batch(settings), 0, []
    for language, regions in plan.runs:
        spans = [] if regions == [] else plan_spans(regions, audio_s, piece_s, SPAN_S,
                                                    overlap_s)
        found, language_heard, batch = transcribe_spans(
            backend, wav, spans, language, settings.model_copy(update={"batch_size": batch}))
        segments += [labelled(s, plan.calls) for s in found]
        heard.append(language_heard)
        count += len(spans)
    segments.sort(key=lambda s: s.start)
    language = dominant(plan.calls) if plan.calls else heard[0]
    return segments, language, batch, count


def labelled(segment: Segment, calls: Sequence[RegionLanguage]) -> Segment:
    call = call_at(calls, segment.start, segment.end)
    if call is None:
        return segment
    return segment.model_copy(update={"language": call.language,
                                      "language_probability": call.probability})


def transcribe_spans(backend: FasterWhisper | WhisperX, wav: Path, spans: Sequence[Span],
                     language: str | None, settings: AsrSettings
                     ) -> tuple[list[Segment], str, int]:
    """Each span read from the WAV and decoded in turn; the segments (stitched), the
    language (the first span's, when it was not given) and the batch size that fitted.
    No spans (VAD heard nobody): nothing to transcribe, nothing to hallucinate."""
    decoded, batch = [], fitted_batch(settings)
    for span in spans:
        audio = read_wav_span(wav, span.start, span.end)
        clips = [(s - span.start, e - span.start) for s, e in span.clips] if span.vad else None
        (segments, language), batch = with_batch_halving(
            partial(backend.transcribe, audio, clips, language, settings), batch, what="asr")
        decoded.append((span, [shifted(s, span.start) for s in segments]))
    return stitch(decoded), language or "und", batch
