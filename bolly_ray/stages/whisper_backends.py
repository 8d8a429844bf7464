"""The two Whisper backends behind the asr stage: faster-whisper and WhisperX.

Both take 16 kHz samples, the speech regions VAD found (or None) and the stage's settings,
and give back transcript segments and the language. faster-whisper decodes one window at a
time with word timings (batch size 1) or through its batched pipeline; WhisperX always
batches, takes VAD regions as its chunks (its own bundled pyannote VAD when there are none)
and leaves word timings to the align stage. Batched decoding needs windows of at most 30 s,
so regions are split and packed into such windows here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from bolly_ray.errors import StageError, UsageError
from bolly_ray.stages.formats.regions import Region
from bolly_ray.stages.formats.transcript import Segment, Word

if TYPE_CHECKING:
    import numpy as np

    from bolly_ray.stages.asr import AsrSettings

WINDOW_S = 30.0  # Whisper's input length: a longer window would lose its tail
PAUSE_S = 1.0  # a longer silence ends a window, so a window's text is one stretch of talk


def windows(regions: Sequence[Region], max_s: float = WINDOW_S,
            max_pause_s: float = PAUSE_S) -> list[Region]:
    """Speech regions packed into consecutive windows of at most `max_s` seconds.

    A region longer than `max_s` is cut into equal parts first; neighbours less than
    `max_pause_s` apart are then packed together while the window stays within `max_s`, so
    quick exchanges share a decoding window and a long pause starts a new one (WhisperX
    gives one text per window, which then becomes one transcript segment).
    """
    pieces: list[Region] = []
    for start, end in regions:
        parts = max(1, math.ceil((end - start) / max_s - 1e-9))
        step = (end - start) / parts
        pieces += [(start + i * step, start + (i + 1) * step) for i in range(parts)]
    packed: list[Region] = []
    for start, end in pieces:
        if packed and end - packed[-1][0] <= max_s and start - packed[-1][1] < max_pause_s:
            packed[-1] = (packed[-1][0], end)
        else:
            packed.append((start, end))
    return packed


def compute_type(settings: AsrSettings, device: str) -> str:
    if settings.compute_type != "auto":
        return settings.compute_type
    return "float16" if device == "cuda" else "int8"


def threads(settings: AsrSettings) -> int:
    return settings.cpu_threads or os.cpu_count() or 1


def decoding_options(settings: AsrSettings) -> dict[str, Any]:
    """The options both backends pass to the decoder, under faster-whisper's names."""
    return {"beam_size": settings.beam_size,
            "compression_ratio_threshold": settings.compression_ratio_threshold,
            "log_prob_threshold": settings.log_prob_threshold,
            "no_speech_threshold": settings.no_speech_threshold,
            "condition_on_previous_text": settings.condition_on_previous_text,
            "initial_prompt": settings.initial_prompt,
            "hotwords": " ".join(settings.hotwords) or None}


class FasterWhisper:
    def __init__(self, settings: AsrSettings, source: str, device: str) -> None:
        from faster_whisper import WhisperModel

        self._load = partial(WhisperModel, source, device=device, local_files_only=True,
                             compute_type=compute_type(settings, device),
                             cpu_threads=threads(settings))
        self.model = self._load()
        self.sampled = False

    def seed(self, seed: int) -> None:
        """Start the next job's fallback sampling from `seed`. CTranslate2 gives each
        decoding thread its own generator, seeded once at its first sample and never again,
        so a model that has sampled is loaded anew (new threads) first: a job's transcript
        then never depends on the jobs this warm model decoded before it."""
        import ctranslate2

        if self.sampled:
            del self.model  # frees the old threads and weights before the new ones load
            self.model = self._load()
            self.sampled = False
        ctranslate2.set_random_seed(seed)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def language_probabilities(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Whisper's language identification on the first 30 s of `audio`, best first."""
        return self.model.detect_language(audio=audio)[2]

    def transcribe(self, audio: np.ndarray, regions: list[Region] | None, language: str | None,
                   settings: AsrSettings, batch_size: int) -> tuple[list[Segment], str]:
        options = dict(decoding_options(settings), language=language, task="transcribe",
                       temperature=settings.temperatures, word_timestamps=True)
        if batch_size <= 1:
            clips = [t for r in regions for t in r] if regions else "0"
            pieces, info = self.model.transcribe(audio, vad_filter=False, clip_timestamps=clips,
                                                 **options)
        else:
            from faster_whisper import BatchedInferencePipeline

            clips_dicts = [{"start": s, "end": e} for s, e in windows(regions)] if regions else None
            pieces, info = BatchedInferencePipeline(self.model).transcribe(
                audio, batch_size=batch_size, clip_timestamps=clips_dicts,
                vad_filter=not regions, **options)
        decoded = list(pieces)
        self.sampled = self.sampled or any(p.temperature for p in decoded)
        return [faster_whisper_segment(p) for p in decoded if p.text.strip()], info.language


class WhisperX:
    def __init__(self, settings: AsrSettings, source: str, device: str) -> None:
        try:
            import whisperx
        except ImportError:
            raise UsageError("asr.backend=whisperx needs the ml extra: "
                             "pip install 'bolly-ray[ml]'") from None
        import torch

        # Ray sets OMP_NUM_THREADS=1 in an actor that reserves no CPU; feature extraction
        # runs in torch, so give it the cores CTranslate2 gets
        torch.set_num_threads(threads(settings))
        options = decoding_options(settings)
        options["temperatures"] = settings.temperatures
        self.device = device
        self.pipeline = whisperx.load_model(  # VAD regions usually come from the vad stage
            source, device, compute_type=compute_type(settings, device), asr_options=options,
            vad_model=given_regions([]), local_files_only=True, threads=threads(settings))
        self._bundled_vad: Any = None

    def bundled_vad(self) -> Any:
        """WhisperX's pyannote VAD (weights inside its wheel), loaded when first needed."""
        if self._bundled_vad is None:
            import torch
            from whisperx.vads import Pyannote

            self._bundled_vad = Pyannote(torch.device(self.device), token=None,
                                         vad_onset=0.5, vad_offset=0.363, chunk_size=WINDOW_S)
        return self._bundled_vad

    def seed(self, seed: int) -> None:
        """WhisperX decodes batches at the first temperature only, so it never samples
        unless that one is above 0; then the seed applies as for faster-whisper."""
        import ctranslate2

        ctranslate2.set_random_seed(seed)

    @property
    def multilingual(self) -> bool:
        return bool(self.pipeline.model.model.is_multilingual)

    def language_probabilities(self, audio: np.ndarray) -> list[tuple[str, float]]:
        """Whisper's language identification (WhisperX's model is faster-whisper's)."""
        return self.pipeline.model.detect_language(audio=audio)[2]

    def transcribe(self, audio: np.ndarray, regions: list[Region] | None, language: str | None,
                   settings: AsrSettings, batch_size: int) -> tuple[list[Segment], str]:
        self.pipeline.vad_model = (given_regions(windows(regions)) if regions is not None
                                   else self.bundled_vad())
        result = self.pipeline.transcribe(audio, batch_size=batch_size, language=language,
                                          task="transcribe", chunk_size=int(WINDOW_S))
        segments = [Segment(start=round(s["start"], 3), end=round(max(s["end"], s["start"]), 3),
                            text=s["text"].strip(), avg_logprob=s.get("avg_logprob"),
                            confidence=_confidence(s.get("avg_logprob")))
                    for s in result["segments"] if s["text"].strip()]
        return segments, result["language"]


def given_regions(regions: list[Region]) -> Any:
    """A WhisperX VAD that returns the regions bolly-ray's vad stage already found."""
    from whisperx.diarize import Segment as VadSegment
    from whisperx.vads.vad import Vad

    class GivenRegions(Vad):
        def __init__(self) -> None:
            super().__init__(0.5)

        def __call__(self, audio: Any, **kwargs: Any) -> list[Any]:
            return [VadSegment(start, end, "UNKNOWN") for start, end in regions]

        @staticmethod
        def preprocess_audio(audio: Any) -> Any:
            return audio

        @staticmethod
        def merge_chunks(segments: list[Any], chunk_size: float, onset: float = 0.5,
                         offset: float | None = None) -> list[dict[str, Any]]:
            return [{"start": s.start, "end": s.end, "segments": [(s.start, s.end)]}
                    for s in segments]  # already packed into windows

    return GivenRegions()


def load_backend(settings: AsrSettings, source: str, device: str) -> FasterWhisper | WhisperX:
    backend = WhisperX if settings.backend == "whisperx" else FasterWhisper
    try:
        return backend(settings, source, device)
    except UsageError:
        raise
    except Exception as err:  # a missing download surfaces as several hub error types
        if device == "cuda" and "CUDA" in str(err):  # the model is there; the GPU is not
            raise StageError(f"asr: cannot load model {settings.model!r} on cuda: "
                             f"{str(err).splitlines()[0]}; set asr.device=cpu, or check the "
                             "node's driver with `bolly-ray doctor`") from None
        raise StageError(f"asr: cannot load model {settings.model!r} offline "
                         f"({type(err).__name__}); set asr.model to a local CTranslate2 "
                         "folder or fetch the model into the Hugging Face cache") from None


def _confidence(avg_logprob: float | None) -> float | None:
    return None if avg_logprob is None else round(min(1.0, math.exp(avg_logprob)), 4)


def faster_whisper_segment(piece: Any) -> Segment:
    words = [Word(text=w.word.strip(), start=round(w.start, 3), end=round(max(w.end, w.start), 3),
                  confidence=min(1.0, max(0.0, w.probability)))
             for w in piece.words or [] if w.word.strip()]
    return Segment(start=round(piece.start, 3), end=round(max(piece.end, piece.start), 3),
                   text=piece.text.strip(), words=words,
                   confidence=_confidence(piece.avg_logprob), avg_logprob=piece.avg_logprob,
                   compression_ratio=max(0.0, piece.compression_ratio),
                   no_speech_prob=min(1.0, max(0.0, piece.no_speech_prob)))
