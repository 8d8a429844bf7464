"""filter: Whisper's hallucinations out of the transcript, each removal listed with its reason.

Whisper invents text in predictable ways, and each gets its own rule: the same line looped
over more than `max_line_repeats` consecutive segments and at least `min_loop_words` words
in all (only the first is kept), one phrase
looped inside a segment (collapsed to one), credit and outro phrases ("Thanks for
watching") where nobody speaks, text over stretches the vad stage found silent, and
segments the recogniser itself doubted (high compression ratio, or low log-probability
together with a high no-speech probability). Short genuine repetition ("No! No! No!")
stays: a loop must be longer than `max_phrase_repeats` and cover several words, and so
must a looped line ("Hello? Hello? Hello?" on a phone call is three people's words). With
`mode: flag` nothing is removed and the report only lists what would have been.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.formats.regions import read_speech
from bolly_ray.stages.formats.text import normalise
from bolly_ray.stages.formats.transcript import ChecksTranscriptInputs, Segment, read_transcript

OUTRO_PHRASES = (
    "thanks for watching", "thank you for watching", "thanks for watching and subscribe",
    "please subscribe", "like and subscribe", "subscribe to my channel",
    "subtitles by the amara org community", "subtitles by", "translated by",
    "transcription by castingwords", "see you in the next video", "dhanyavaad",
)


class FilterSettings(StageSettings):
    mode: Literal["drop", "flag"] = Field(default="drop", description="drop: remove what the "
                                          "rules find; flag: keep everything, report only")
    max_line_repeats: int = Field(default=2, ge=1, le=50, description="Consecutive identical "
                                  "segments allowed before the rest count as a loop")
    max_phrase_repeats: int = Field(default=3, ge=2, le=50, description="Back-to-back "
                                    "repeats of one phrase allowed inside a segment")
    min_loop_words: int = Field(default=6, ge=2, le=100, description="A loop (of lines, or "
                                "of a phrase inside a segment) must cover at least this many "
                                "words")
    min_speech_overlap: float = Field(default=0.2, ge=0, le=1, description="Share of a "
                                      "segment VAD must call speech for it to stay")
    compression_ratio_threshold: float = Field(default=2.4, gt=1)
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = Field(default=0.6, ge=0, le=1)
    outro_phrases: list[str] = Field(default_factory=lambda: list(OUTRO_PHRASES))


class FilterStage(ChecksTranscriptInputs, Stage[FilterSettings]):
    spec = StageSpec(
        name="filter", inputs=("speaker_transcript",), optional_inputs=("speech",),
        outputs=("filtered_transcript", "hallucinations"), settings_model=FilterSettings,
        resources=Resources(cpus=1, memory_mb=512), version="2")

    def run(self, ctx: StageContext[FilterSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["speaker_transcript"])
        speech = read_speech(ctx.inputs.get("speech"))
        kept, removed = filter_segments(transcript.segments, speech, settings)
        if settings.mode == "flag":
            kept = list(transcript.segments)
        transcript.model_copy(update={"segments": kept}).write(
            ctx.out_dir / "transcript.json")
        (ctx.out_dir / "hallucinations.json").write_text(json.dumps(
            {"mode": settings.mode, "removed": removed}, indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8")
        if removed:
            ctx.log.info("filter: %d segment(s) %s", len(removed),
                         "flagged" if settings.mode == "flag" else "removed")
        return StageResult(outputs={"filtered_transcript": "transcript.json",
                                    "hallucinations": "hallucinations.json"},
                           metrics={"removed": len(removed), "kept": len(kept)})


def filter_segments(segments: Sequence[Segment], speech: list[tuple[float, float]] | None,
                    settings: FilterSettings) -> tuple[list[Segment], list[dict[str, Any]]]:
    """(segments kept, one report entry per segment removed or shortened)."""
    kept: list[Segment] = []
    removed: list[dict[str, Any]] = []
    runs = run_lengths([normalise(s.text) for s in segments])
    for segment, (position, length) in zip(segments, runs, strict=True):
        if position > 0 and is_line_loop(segment, length, settings):
            reason: str | None = f"a loop: the same line {length} times in a row (first kept)"
        else:
            reason = verdict(segment, normalise(segment.text), speech, settings)
        if reason:
            removed.append(report(segment, reason))
            continue
        tokens = segment.text.split()
        keep = collapse_loops(tokens, settings)
        if len(keep) < len(tokens):
            collapsed = " ".join(tokens[i] for i in keep)
            removed.append(report(segment, f"a phrase looped inside the segment; kept "
                                           f"{collapsed!r}"))
            words = ([segment.words[i] for i in keep] if len(segment.words) == len(tokens)
                     else [])  # word timings that no longer match the text are dropped
            segment = segment.model_copy(update={"text": collapsed, "words": words})
        kept.append(segment)
    return kept, removed


def is_line_loop(segment: Segment, repeats: int, settings: FilterSettings) -> bool:
    """A line repeated more than allowed, over at least `min_loop_words` words in all: a
    phone call's "Hello? Hello? Oh, hello." is three real segments, Whisper's loops run
    longer."""
    return (repeats > settings.max_line_repeats
            and repeats * len(normalise(segment.text).split()) >= settings.min_loop_words)


def run_lengths(texts: list[str]) -> list[tuple[int, int]]:
    """For each text: (its position in its run of identical neighbours, the run's length)."""
    out: list[tuple[int, int]] = []
    start = 0
    for index in range(1, len(texts) + 1):
        if index == len(texts) or not texts[index] or texts[index] != texts[start]:
            out += [(i - start, index - start) for i in range(start, index)]
            start = index
    return out


def verdict(segment: Segment, text: str, speech: list[tuple[float, float]] | None,
            settings: FilterSettings) -> str | None:
    """Why this segment is a hallucination, or None."""
    silent = speech is not None and speech_share(segment, speech) < settings.min_speech_overlap
    unsure = (segment.no_speech_prob or 0.0) > settings.no_speech_threshold
    outro = text in {normalise(p) for p in settings.outro_phrases}
    if outro and (silent or unsure or speech is None):
        return "a credit/outro phrase where nobody speaks"
    if silent:
        return "text over a stretch VAD found silent"
    if (segment.compression_ratio or 0.0) > settings.compression_ratio_threshold:
        return f"compression ratio {segment.compression_ratio:.2f} (a loop)"
    if unsure and (segment.avg_logprob if segment.avg_logprob is not None else 0.0) < (
            settings.log_prob_threshold):
        return (f"no-speech probability {segment.no_speech_prob:.2f} with log-probability "
                f"{segment.avg_logprob:.2f}")
    return None


def speech_share(segment: Segment, speech: list[tuple[float, float]]) -> float:
    length = segment.end - segment.start
    if length <= 0:
        return 1.0 if any(s <= segment.start <= e for s, e in speech) else 0.0
    covered = sum(max(0.0, min(e, segment.end) - max(s, segment.start)) for s, e in speech)
    return covered / length


def collapse_loops(tokens: list[str], settings: FilterSettings) -> list[int]:
    """Indices of the tokens to keep: a phrase repeated back to back more than allowed (and
    covering enough words) is kept once."""
    keys = [normalise(t) for t in tokens]
    keep: list[int] = []
    i = 0
    while i < len(tokens):
        size, count = longest_loop(keys, i, settings.max_phrase_repeats)
        if size and size * count >= settings.min_loop_words:
            keep += range(i, i + size)
            i += size * count
        else:
            keep.append(i)
            i += 1
    return keep


def longest_loop(keys: list[str], start: int, allowed: int) -> tuple[int, int]:
    """(phrase length, repeats) of the longest-running loop starting at `start`, when a
    phrase of 1-8 words repeats there more than `allowed` times; (0, 0) otherwise."""
    best = (0, 0)
    for size in range(1, 9):
        phrase = keys[start:start + size]
        if len(phrase) < size or not any(phrase):
            break
        count = 1
        while keys[start + count * size:start + (count + 1) * size] == phrase:
            count += 1
        if count > allowed and size * count > best[0] * best[1]:
            best = (size, count)
    return best


def report(segment: Segment, reason: str) -> dict[str, Any]:
    return {"start": segment.start, "end": segment.end, "text": segment.text, "reason": reason}

