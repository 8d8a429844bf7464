"""Which language each stretch of speech is in, for films that speak more than one.

Hinglish films switch between Hindi and English from one line to the next. With
`asr.language: mixed` Whisper's own language identification (one encoder pass on the
region's first 30 s) runs on every VAD region, and each run of consecutive regions in one
language is then decoded in that language; with `auto` the same identification picks one
language for the whole film (the one with the most confident speech), which a film whose
first minute is a song cannot fool. Candidates can be narrowed (`asr.candidate_languages`:
Whisper often calls Hindi Urdu, and an English line Welsh). A region too short to tell
(under `MIN_REGION_S`) or identified with little confidence (under `MIN_PROBABILITY` and
less than `MIN_LEAD` times as likely as the runner-up) takes its neighbours' language, as a
one-word "Okay." in a Hindi scene is still part of that scene.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bolly_ray.stages.formats.regions import Region
from bolly_ray.stages.support.audio import read_wav_span

if TYPE_CHECKING:
    import numpy as np

MIN_REGION_S = 1.0  # Whisper's language guess on less speech than this is a coin toss
MIN_PROBABILITY = 0.5  # below this, a region follows its neighbours, unless its language
MIN_LEAD = 2.0  # is this many times as likely as the next best
WINDOW_S = 30.0  # Whisper identifies the language from one window


@dataclass(frozen=True)
class RegionLanguage:
    """A region's language, how sure Whisper was, and whether it was identified there
    (False: taken from its neighbours)."""

    region: Region
    language: str
    probability: float
    runner_up: float = 0.0
    identified: bool = True


Identify = Callable[["np.ndarray"], list[tuple[str, float]]]
"""Whisper's language probabilities, best first, for 16 kHz samples."""


def best_of(probabilities: Sequence[tuple[str, float]], candidates: Sequence[str]
            ) -> tuple[str, float, float]:
    """The most likely language among `candidates` (all when empty), its probability and
    the runner-up's, renormalised over the candidates."""
    allowed = sorted(((p, code) for code, p in probabilities
                      if not candidates or code in candidates), reverse=True)
    if not allowed:
        allowed = sorted(((p, code) for code, p in probabilities), reverse=True)
    total = sum(p for p, _ in allowed) or 1.0
    second = allowed[1][0] if len(allowed) > 1 else 0.0
    return allowed[0][1], allowed[0][0] / total, second / total


def identify(wav: Path, regions: Sequence[Region], detect: Identify,
             candidates: Sequence[str]) -> list[RegionLanguage]:
    """Each region's language as Whisper hears it (its first 30 s, read from the WAV)."""
    found = []
    for start, end in regions:
        code, probability, second = best_of(
            detect(read_wav_span(wav, start, min(end, start + WINDOW_S))), candidates)
        found.append(RegionLanguage((start, end), code, round(probability, 4), round(second, 4)))
    return found


def is_sure(call: RegionLanguage) -> bool:
    start, end = call.region
    confident = (call.probability >= MIN_PROBABILITY
                 or call.probability >= MIN_LEAD * call.runner_up)
    return end - start >= MIN_REGION_S and confident


def settle(calls: Sequence[RegionLanguage]) -> list[RegionLanguage]:
    """The calls, each unsure one given the language of the nearest sure region (the
    earlier one on a tie); all of them unsure: the most likely language overall."""
    sure = [n for n, call in enumerate(calls) if is_sure(call)]
    if not sure:
        fallback = dominant(calls)
        return [replace(c, language=fallback, identified=c.language == fallback) for c in calls]
    settled = []
    for n, call in enumerate(calls):
        if is_sure(call):
            settled.append(call)
            continue
        nearest = min(sure, key=lambda k: (abs(k - n), k))
        language = calls[nearest].language
        settled.append(replace(call, language=language, identified=call.language == language))
    return settled


def dominant(calls: Sequence[RegionLanguage]) -> str:
    """The language with the most speech, each region weighted by how sure Whisper was."""
    weight: dict[str, float] = {}
    for call in calls:
        start, end = call.region
        weight[call.language] = weight.get(call.language, 0.0) + (end - start) * call.probability
    return max(weight, key=lambda code: weight[code])


def one_language(calls: Sequence[RegionLanguage]) -> list[RegionLanguage]:
    """Every region in the dominant language (`auto`), each with that language's share of
    the weighted speech as its probability."""
    chosen = dominant(calls)
    weights = [(c.region[1] - c.region[0]) * c.probability for c in calls]
    share = sum(w for w, c in zip(weights, calls, strict=True) if c.language == chosen)
    probability = round(share / (sum(weights) or 1.0), 4)
    return [replace(c, language=chosen, probability=probability,
                    identified=c.language == chosen) for c in calls]


def language_runs(calls: Sequence[RegionLanguage]) -> list[tuple[str, list[Region]]]:
    """Consecutive regions in one language, grouped: each group is decoded in its language."""
    runs: list[tuple[str, list[Region]]] = []
    for call in calls:
        if runs and runs[-1][0] == call.language:
            runs[-1][1].append(call.region)
        else:
            runs.append((call.language, [call.region]))
    return runs


def call_at(calls: Sequence[RegionLanguage], start: float, end: float) -> RegionLanguage | None:
    """The region a segment lies in (most overlap), or None."""
    overlap = [(min(end, c.region[1]) - max(start, c.region[0]), c) for c in calls]
    best = max(overlap, key=lambda pair: pair[0], default=None)
    return best[1] if best and best[0] >= 0 else None
