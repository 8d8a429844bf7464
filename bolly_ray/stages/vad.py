"""vad: where people speak, from the Silero VAD model, optionally confirmed by pyannote.

Silero's model comes from one of two packages (`vad.model`). The silero-vad package (the
`ml` extra, which brings PyTorch) ships Silero's current weights; the stage runs them with
the package's own batched ONNX runner (`load_silero_vad(sequence=True)` and
`get_speech_timestamps_sequence`, which give the same probabilities as its frame-by-frame
`get_speech_timestamps`, faster). faster-whisper's wheel carries an earlier copy (Silero
v6.0, the weights silero-vad 6.0-6.1 shipped) that runs without PyTorch, which is what the
vad container image and a core install use. `auto` takes silero-vad when it is installed;
the model's name and version go into the cache key and into the output, so regions from one
are never reused for the other. Speech regions closer than `merge_gap_s` are merged
(dialogue with short pauses stays one region) and each is padded; the result is a JSON list
of regions in seconds that ASR uses to skip silence and songs' instrumental stretches. With
`second_pass: pyannote` (the `ml` extra) a pyannote segmentation model (by default the one
inside WhisperX's wheel) runs too and only what both models call speech is kept, which
trims Silero's false alarms on music. Memory stays bounded on a film of any length: both
models run on ten-minute windows read one at a time from the WAV, each with half a minute
of context on either side; a region cut by a window's edge is joined again at that edge.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from bolly_ray.core.modules import installed
from bolly_ray.errors import StageError
from bolly_ray.spec import (
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.formats.regions import Region, intersect
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav_span, wav_samples

if TYPE_CHECKING:
    import numpy as np

MODEL = "silero-vad-v6 (onnx, from faster-whisper)"
"""Silero v6.0 as faster-whisper's wheel carries it (faster_whisper/assets/silero_vad_v6.onnx):
the weights silero-vad 6.0 and 6.1 shipped, in a batched ONNX graph; needs no PyTorch."""
SILERO_VAD_MIN = "6.2.2"  # the first silero-vad with the batched runner (sequence_vad)
WINDOW_S = 600  # audio per model call (38 MB of samples); whole seconds, on pyannote's grid
FRAME_SAMPLES = 512  # Silero scores audio in frames of 32 ms at 16 kHz
MARGIN_S = 30  # context read on each side of a window, its regions dropped afterwards
Backend = Literal["silero-vad", "faster-whisper"]


class VadSettings(OptionalStageSettings):
    model: Literal["auto", "silero-vad", "faster-whisper"] = Field(
        default="auto", description="Which package's Silero model runs: silero-vad (the ml "
        "extra, with PyTorch) or faster-whisper's copy (no PyTorch); auto: silero-vad when "
        "installed")
    threshold: float = Field(default=0.5, gt=0, lt=1, description="Speech probability cut-off")
    min_speech_ms: int = Field(default=250, ge=0, description="Drop shorter speech")
    # faster-whisper's own VAD defaults: on real speech, tighter regions (500 ms, 200 ms)
    # cut the first word's onset and decoded short regions without their context, and the
    # pipeline made more errors than the bare library (docs/QUALITY.md)
    min_silence_ms: int = Field(default=2000, ge=0, description="Silence that ends a region")
    speech_pad_ms: int = Field(default=400, ge=0, description="Padding on each side")
    max_speech_s: float = Field(default=30.0, gt=0, description="Split longer regions")
    merge_gap_s: float = Field(default=0.3, ge=0, description="Merge regions this close")
    second_pass: Literal["none", "pyannote"] = Field(
        default="none", description="Confirm Silero's regions with pyannote segmentation "
        "(needs the ml extra)")
    pyannote_model: str | None = Field(default=None, description="pyannote segmentation "
                                       "checkpoint (default: the one inside WhisperX's wheel)")
    pyannote_onset: float = Field(default=0.5, gt=0, lt=1)


def pyannote_pipeline(settings: VadSettings) -> Any:
    try:
        from pyannote.audio import Model
        from pyannote.audio.pipelines import VoiceActivityDetection
    except ImportError:
        raise StageError("vad.second_pass=pyannote needs the ml extra: "
                         "pip install 'bolly-ray[ml]'") from None
    checkpoint = settings.pyannote_model or bundled_segmentation()
    try:
        model = Model.from_pretrained(checkpoint)
    except Exception as err:  # hub and checkpoint errors come in many types
        raise StageError(f"vad: cannot load pyannote segmentation {checkpoint!r} offline "
                         f"({type(err).__name__})") from None
    if model is None:  # from_pretrained's answer when the hub gives no checkpoint file
        raise StageError(f"vad: cannot load pyannote segmentation {checkpoint!r} offline")
    pipeline = VoiceActivityDetection(segmentation=model)
    pipeline.instantiate({"onset": settings.pyannote_onset, "offset": settings.pyannote_onset,
                          "min_duration_on": 0.0, "min_duration_off": 0.0})
    return pipeline


def windows(audio_s: float, size_s: float) -> list[Region]:
    """The stretches a model runs on one at a time: the whole file when it is short."""
    if audio_s <= size_s:
        return [(0.0, audio_s)]
    edges = [*range(0, math.ceil(audio_s), int(size_s))][1:]
    return list(zip([0.0, *edges], [*edges, audio_s], strict=True))


def on_frame_grid(seconds: float) -> float:
    """`seconds` moved back onto Silero's grid of FRAME_SAMPLES: a window read from elsewhere
    hears every frame shifted, and its region ends move by up to half a second."""
    return math.floor(seconds * SAMPLE_RATE / FRAME_SAMPLES) * FRAME_SAMPLES / SAMPLE_RATE


def windowed(path: Path, audio_s: float, find: Callable[[np.ndarray], list[Region]]
             ) -> list[Region]:
    """`find` (regions in seconds of the audio it is given) run window by window over the
    WAV; each window sees MARGIN_S of context on each side, keeps only what lies inside
    itself, and a region cut by a window edge is joined again by merging touching ones."""
    found: list[Region] = []
    for start, end in windows(audio_s, WINDOW_S):
        lo, hi = on_frame_grid(max(0.0, start - MARGIN_S)), min(audio_s, end + MARGIN_S)
        for first, last in find(read_wav_span(path, lo, hi)):
            clipped = (max(start, lo + first), min(end, lo + last))
            if clipped[1] > clipped[0]:
                found.append(clipped)
    return merge(found, 0.0)


def silero_vad_version() -> str | None:
    try:
        return importlib.metadata.version("silero-vad")
    except importlib.metadata.PackageNotFoundError:
        return None


def silero_vad_problem() -> str | None:
    """Why the silero-vad package cannot run here, or None when it can. Answered from the
    installed distributions, without importing silero-vad (whose import loads PyTorch)."""
    version = silero_vad_version()
    if version is None or not (installed("silero_vad") and installed("torch")):
        return "vad.model=silero-vad needs the ml extra: pip install 'bolly-ray[ml]'"
    from packaging.version import Version  # not in the stage images, which lack silero-vad

    if Version(version) < Version(SILERO_VAD_MIN):
        return (f"vad.model=silero-vad needs silero-vad>={SILERO_VAD_MIN} (installed: "
                f"{version}): pip install 'bolly-ray[ml]'")
    return None


def backend(settings: VadSettings) -> Backend:
    """The package whose Silero model these settings run on this machine."""
    if settings.model != "auto":
        return settings.model
    return "faster-whisper" if silero_vad_problem() else "silero-vad"


def silero_model_name(chosen: Backend) -> str:
    if chosen == "faster-whisper":
        return MODEL
    return f"silero-vad-v{silero_vad_version() or '?'} (onnx, from silero-vad)"


@functools.cache
def silero_vad_runner() -> tuple[Any, Callable[..., list[dict]]]:
    """silero-vad's batched ONNX model (silero_vad/data/silero_vad_16k_sequence.onnx) and
    the package's function that finds speech with it, loaded once per process."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad  # its import calls torch.set_num_threads(1) for the whole process,

    torch.set_num_threads(threads)  # which would slow every later PyTorch stage here
    return silero_vad.load_silero_vad(sequence=True), silero_vad.get_speech_timestamps_sequence


def silero_finder(settings: VadSettings, chosen: Backend
                  ) -> Callable[[np.ndarray], list[Region]]:
    """Silero's regions (seconds) in the audio it is given, from the package `chosen`; both
    take the same settings and both use Silero's rule for a speech-probability threshold
    (`neg_threshold` = threshold - 0.15 ends a region). They differ when a region reaches
    `max_speech_s`: silero-vad splits it at its longest pause, faster-whisper at its last."""
    if chosen == "silero-vad":
        problem = silero_vad_problem()
        if problem:
            raise StageError(problem)
        model, speech_timestamps = silero_vad_runner()

        def chunks(audio: np.ndarray) -> list[dict]:
            return speech_timestamps(
                audio, model, threshold=settings.threshold, sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=settings.min_speech_ms,
                min_silence_duration_ms=settings.min_silence_ms,
                speech_pad_ms=settings.speech_pad_ms,
                max_speech_duration_s=settings.max_speech_s)
    else:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        options = VadOptions(threshold=settings.threshold,
                             min_speech_duration_ms=settings.min_speech_ms,
                             min_silence_duration_ms=settings.min_silence_ms,
                             speech_pad_ms=settings.speech_pad_ms,
                             max_speech_duration_s=settings.max_speech_s)

        def chunks(audio: np.ndarray) -> list[dict]:
            return get_speech_timestamps(audio, options, sampling_rate=SAMPLE_RATE)

    def find(audio: np.ndarray) -> list[Region]:
        return [(c["start"] / SAMPLE_RATE, c["end"] / SAMPLE_RATE) for c in chunks(audio)]

    return find


def silero_regions(path: Path, audio_s: float, settings: VadSettings,
                   chosen: Backend | None = None) -> list[Region]:
    """Silero's regions in the WAV at `path`, window by window (see `windowed`)."""
    return windowed(path, audio_s, silero_finder(settings, chosen or backend(settings)))


def pyannote_regions(path: Path, audio_s: float, settings: VadSettings) -> list[Region]:
    import torch

    pipeline = pyannote_pipeline(settings)

    def find(audio: np.ndarray) -> list[Region]:
        turns = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": SAMPLE_RATE})
        return [(turn.start, turn.end) for turn in turns.get_timeline().support()]

    return windowed(path, audio_s, find)


def bundled_segmentation() -> str:
    spec = importlib.util.find_spec("whisperx")
    if spec is None or spec.origin is None:
        raise StageError("vad: set vad.pyannote_model (no WhisperX, whose wheel carries one)")
    return str(Path(spec.origin).parent / "assets" / "pytorch_model.bin")


def merge(regions: list[Region], gap: float) -> list[Region]:
    merged: list[Region] = []
    for start, end in regions:
        if merged and start - merged[-1][1] <= gap:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


class VadStage(Stage[VadSettings]):
    spec = StageSpec(
        name="vad", inputs=("audio",), outputs=("speech",), settings_model=VadSettings,
        resources=Resources(cpus=1, memory_mb=1024), critical=False,
        image_requirements=("faster-whisper>=1.1",), version="3")

    def model_id(self, settings: VadSettings) -> str:
        model = silero_model_name(backend(settings))
        if settings.second_pass == "pyannote":
            return f"{model} + pyannote {settings.pyannote_model or 'whisperx-bundled'}"
        return model

    def missing_models(self, settings: VadSettings) -> list[str]:
        problem = silero_vad_problem() if settings.model == "silero-vad" else None
        return [problem] if problem else []

    def run(self, ctx: StageContext[VadSettings], model: object = None) -> StageResult:
        settings = ctx.settings
        chosen = backend(settings)  # recorded in the output: the package that really ran
        length_s = wav_samples(ctx.inputs["audio"]) / SAMPLE_RATE
        audio_s = round(length_s, 3)
        regions = silero_regions(ctx.inputs["audio"], length_s, settings, chosen)
        if settings.second_pass == "pyannote":
            pad = settings.speech_pad_ms / 1000
            confirmed = [(max(0.0, s - pad), e + pad)
                         for s, e in pyannote_regions(ctx.inputs["audio"], length_s, settings)]
            regions = intersect(regions, merge(confirmed, 0.0))
        regions = merge(regions, settings.merge_gap_s)
        speech_s = sum(end - start for start, end in regions)
        (ctx.out_dir / "speech.json").write_text(json.dumps({
            "model": self.model_id(settings.model_copy(update={"model": chosen})),
            "audio_s": audio_s,
            "speech_s": round(speech_s, 3),
            "segments": [{"start": round(s, 3), "end": round(e, 3)} for s, e in regions],
        }, indent=2) + "\n")
        return StageResult(outputs={"speech": "speech.json"},
                           metrics={"audio_s": audio_s, "speech_s": round(speech_s, 3),
                                    "regions": len(regions)})
