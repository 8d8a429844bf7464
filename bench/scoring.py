"""Word error rates and timing errors, as ASR benchmarks compute them.

WER (jiwer) on two normalisations of reference and hypothesis: `basic` (lower case,
punctuation dropped, whitespace collapsed) and `normalised`, Whisper's text normalisers from
whisper-normalizer: for English `EnglishTextNormalizer` (numbers, spellings, contractions,
fillers), for Hindi `HindiNormalizer` (the Indic NLP library's Devanagari normalisation
that Indic benchmarks use: nukta, chandrabindu/anusvara, danda, digits), for other
languages `BasicTextNormalizer`. Timing: each timed reference utterance's first and last
words, matched to the hypothesis's words by jiwer's alignment, against the utterance's
start and end (starts and ends apart: a cue may end later on purpose, to be read).
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jiwer

PUNCTUATION = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def basic(text: str) -> str:
    return " ".join(PUNCTUATION.sub(" ", text.lower()).split())


@functools.cache
def normaliser(language: str) -> Callable[[str], str]:
    base = language.split("-")[0]
    if base == "en":
        from whisper_normalizer.english import EnglishTextNormalizer

        return EnglishTextNormalizer()
    if base == "hi":
        from whisper_normalizer.indic import HindiNormalizer

        hindi = HindiNormalizer()
        return lambda text: basic(hindi(text))
    from whisper_normalizer.basic import BasicTextNormalizer

    return BasicTextNormalizer()


@dataclass(frozen=True)
class Errors:
    """Word errors of one or more utterances, which add up across a set."""

    errors: int
    words: int

    @property
    def rate(self) -> float:
        return self.errors / self.words if self.words else 0.0

    def __add__(self, other: Errors) -> Errors:
        return Errors(self.errors + other.errors, self.words + other.words)


def word_errors(reference: str, hypothesis: str, clean: Callable[[str], str]) -> Errors:
    ref, hyp = clean(reference), clean(hypothesis)
    if not ref.split():
        return Errors(len(hyp.split()), 0)
    out = jiwer.process_words(ref, hyp or "")
    return Errors(out.substitutions + out.deletions + out.insertions, len(ref.split()))


def both_rates(reference: str, hypothesis: str, language: str) -> tuple[Errors, Errors]:
    return (word_errors(reference, hypothesis, basic),
            word_errors(reference, hypothesis, normaliser(language)))


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float
    end: float


def boundary_errors(utterances: Sequence[tuple[str, float, float]],
                    words: Sequence[TimedWord]) -> tuple[list[float], list[float]]:
    """Seconds between each utterance's start (end) and the start (end) of the hypothesis
    word aligned to its first (last) word, starts and ends apart; utterances whose edge
    words were not heard are left out (their words count in the WER), and so are edges
    the hypothesis does not time (NaN)."""
    ref_words: list[tuple[str, int]] = []
    for n, (text, _, _) in enumerate(utterances):
        ref_words += [(w, n) for w in basic(text).split()]
    hyp_words = [part for w in words for part in cleaned(w)]
    if not ref_words or not hyp_words:
        return [], []
    aligned = aligned_pairs([w for w, _ in ref_words], [w.text for w in hyp_words])
    starts, ends = [], []
    for n, (_, start, end) in enumerate(utterances):
        mine = [i for i, (_, u) in enumerate(ref_words) if u == n]
        first, last = aligned.get(mine[0]), aligned.get(mine[-1])
        if first is not None and not math.isnan(hyp_words[first].start):
            starts.append(abs(hyp_words[first].start - start))
        if last is not None and not math.isnan(hyp_words[last].end):
            ends.append(abs(hyp_words[last].end - end))
    return starts, ends


def cleaned(word: TimedWord) -> list[TimedWord]:
    """A hypothesis word as the words `basic` makes of it ("well-known" is two), the first
    keeping its start and the last its end."""
    parts = basic(word.text).split()
    return [TimedWord(part, word.start if k == 0 else math.nan,
                      word.end if k == len(parts) - 1 else math.nan)
            for k, part in enumerate(parts)]


def aligned_pairs(ref: list[str], hyp: list[str]) -> dict[int, int]:
    """Reference word index -> hypothesis word index, for words jiwer matched or
    substituted (one word each, each word a 'sentence' so that jiwer does not re-split)."""
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    pairs: dict[int, int] = {}
    for chunk in out.alignments[0]:
        if chunk.type in ("equal", "substitute"):
            for k in range(chunk.ref_end_idx - chunk.ref_start_idx):
                pairs[chunk.ref_start_idx + k] = chunk.hyp_start_idx + k
    return pairs


def summary_ms(errors: Sequence[float]) -> str:
    if not errors:
        return "-"
    return f"{1000 * statistics.median(errors):.0f} / {1000 * max(errors):.0f}"
