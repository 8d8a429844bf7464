"""Subtitle layout: a transcript becomes timed, line-broken cues that follow house standards.

Pure functions, no I/O. Each segment is tokenised (its text is the truth; word timings are
used when they match the text word for word, otherwise time is shared out in proportion to
characters) and cut into speaker runs. A dynamic programme splits each run into cues that fit
`max_lines` x `max_chars_per_line`, preferring cuts at sentence ends, then clauses, then before
conjunctions, and avoiding cues longer than `max_duration_s`. A run too brief to read on its
own joins a close neighbour of the same speaker (never another speaker). Each cue's lines are
chosen among all layouts with the fewest lines by break quality and a balanced, bottom-heavy
shape. Finally cues are retimed on a centisecond grid (exact in SRT, VTT and ASS alike):
stretched into following silence for minimum duration and reading speed, capped at the
maximum, and kept `min_gap_s` apart.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, groupby, pairwise

from bolly_ray.transcript import Segment, Transcript

SENTENCE_END = (".", "?", "!", "…", "।", "॥")
CLAUSE_END = (",", ";", ":", "–", "—")
CLOSING_MARKS = "\"'”’)]»"
PUNCTUATION = string.punctuation + CLOSING_MARKS + "“‘«¿¡।॥…–—"
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "prof."})
# A new line or cue may start with these: conjunctions, prepositions, relative words.
BREAK_BEFORE = frozenset({
    "and", "but", "or", "nor", "so", "yet", "because", "that", "which", "who", "whom",
    "whose", "when", "where", "while", "if", "unless", "until", "although", "though", "since",
    "than", "to", "of", "in", "on", "at", "for", "with", "without", "from", "by", "about",
    "into", "after", "before", "like", "as",
    "और", "लेकिन", "मगर", "कि", "या", "क्योंकि", "जब", "अगर",
    "aur", "lekin", "magar", "kyunki", "agar",
})
# Words that belong with what follows: articles, determiners, prepositions, subject pronouns.
NO_BREAK_AFTER = frozenset({
    "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "these",
    "those", "to", "of", "in", "on", "at", "for", "with", "from", "by", "into", "and", "but",
    "or", "not", "very", "i", "we", "you", "he", "she", "they", "about", "without", "over",
    "under", "through", "between", "against", "during", "towards", "upon", "some", "every",
    "each",
})
# Hindi postpositions and auxiliaries attach to the word before them.
NO_BREAK_BEFORE = frozenset({
    "का", "की", "के", "को", "में", "से", "ने", "पर", "तक", "है", "हैं", "था", "थी", "थे", "हूँ",
})

CUE_COST = 10.0
"""Penalty per cue, so that the splitter prefers fewer, fuller cues."""


@dataclass(frozen=True)
class LayoutRules:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_cps: float = 17.0
    min_duration_s: float = 5 / 6
    max_duration_s: float = 7.0
    min_gap_frames: int = 2
    frame_rate: float = 25.0
    speaker_labels: bool = False
    lyric_marker: str = "♪"

    @property
    def min_gap_s(self) -> float:
        return self.min_gap_frames / self.frame_rate


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]
    is_lyric: bool = False
    speaker: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass(frozen=True)
class _Token:
    text: str
    start: float
    end: float
    speaker: str | None


@dataclass(frozen=True)
class _Run:
    """Consecutive tokens of one segment spoken by one speaker."""

    tokens: tuple[_Token, ...]
    speaker: str | None
    is_lyric: bool
    label: str | None = None


@dataclass(frozen=True)
class _Draft:
    """The tokens of one future cue, with their natural (spoken) timing."""

    tokens: tuple[_Token, ...]
    speaker: str | None
    is_lyric: bool
    label: str | None
    opens_run: bool

    @property
    def start(self) -> float:
        return self.tokens[0].start

    @property
    def end(self) -> float:
        return self.tokens[-1].end


def build_cues(transcript: Transcript, rules: LayoutRules) -> list[Cue]:
    """Timed, laid-out cues for a transcript: sorted, non-empty and never overlapping."""
    runs = _with_labels(list(_runs(transcript)), rules)
    split = [draft for run in runs for draft in _RunSplitter(run, rules).drafts()]
    drafts = _merge_brief_runs(split, rules)
    return _retime([_to_cue(draft, rules) for draft in drafts], rules)


# --- tokens and runs -------------------------------------------------------------------------

def _runs(transcript: Transcript) -> Iterator[_Run]:
    for segment in sorted(transcript.segments, key=lambda s: s.start):
        tokens = _monotonic(_timed_tokens(segment))
        for speaker, group in groupby(tokens, key=lambda t: t.speaker):
            yield _Run(tuple(group), speaker, segment.is_lyric)


def _timed_tokens(segment: Segment) -> list[_Token]:
    texts = segment.text.split()
    timed = [(word, piece) for word in segment.words for piece in word.text.split()]
    if not timed or len(timed) != len(texts):
        return _proportional_tokens(texts, segment)
    return [_Token(text, word.start, word.end, word.speaker or segment.speaker)
            for text, (word, _) in zip(texts, timed, strict=True)]


def _proportional_tokens(texts: list[str], segment: Segment) -> list[_Token]:
    weights = [len(text) + 1 for text in texts]  # the space after a word takes time too
    total, span = sum(weights), segment.end - segment.start
    tokens, elapsed = [], 0
    for text, weight in zip(texts, weights, strict=True):
        start = segment.start + span * elapsed / total
        elapsed += weight
        tokens.append(_Token(text, start, segment.start + span * elapsed / total, segment.speaker))
    return tokens


def _monotonic(tokens: list[_Token]) -> list[_Token]:
    """Word timings from aligners can run backwards; never let a token start before the last."""
    fixed: list[_Token] = []
    for token in tokens:
        start = max(token.start, fixed[-1].start) if fixed else token.start
        fixed.append(_Token(token.text, start, max(token.end, start), token.speaker))
    return fixed


def _with_labels(runs: list[_Run], rules: LayoutRules) -> list[_Run]:
    labelled, previous = [], None
    for run in runs:
        changed = run.speaker is not None and run.speaker != previous
        label = run.speaker if rules.speaker_labels and changed else None
        labelled.append(_Run(run.tokens, run.speaker, run.is_lyric, label))
        previous = run.speaker
    return labelled


# --- line breaking ---------------------------------------------------------------------------

def _bare(word: str) -> str:
    return word.strip(PUNCTUATION).lower()


def _break_penalty(before: str, after: str) -> float:
    """How bad it is to end a line (or cue) after `before` and start the next with `after`."""
    if before.lower() in ABBREVIATIONS:
        return 10.0
    tail = before.rstrip(CLOSING_MARKS)
    if tail.endswith(SENTENCE_END):
        return 0.0
    if tail.endswith(CLAUSE_END):
        return 1.0
    if _bare(before) in NO_BREAK_AFTER or _bare(after) in NO_BREAK_BEFORE or not _bare(after):
        return 10.0
    if _bare(after) in BREAK_BEFORE:
        return 2.0
    if before[:1].isupper() and after[:1].isupper():
        return 6.0  # likely a multi-word name
    return 4.0


def _affixes(is_lyric: bool, label: str | None, rules: LayoutRules) -> tuple[str, str]:
    prefix = f"[{label}] " if label else ""
    if is_lyric and rules.lyric_marker:
        return f"{prefix}{rules.lyric_marker} ", f" {rules.lyric_marker}"
    return prefix, ""


def _line_count(lengths: Sequence[int], width: int) -> int:
    """Fewest lines that hold these words; an over-long word takes a line of its own."""
    lines, used = 1, -1
    for length in lengths:
        if used >= 0 and used + 1 + length > width:
            lines, used = lines + 1, length
        else:
            used += 1 + length
    return lines


def _penalties(texts: Sequence[str]) -> list[float]:
    """Entry i: the cost of a line or cue break just before word i (entry 0 is unused)."""
    return [0.0, *(_break_penalty(a, b) for a, b in pairwise(texts))]


def _best_cuts(lengths: Sequence[int], penalties: Sequence[float], width: int
               ) -> tuple[float, tuple[int, ...]]:
    """The cheapest valid layout with the fewest lines: (cost, indexes of words opening lines)."""
    count = _line_count(lengths, width)
    offsets = list(accumulate((n + 1 for n in lengths), initial=0))
    return min((_layout_cost(cuts, offsets, penalties, width), cuts)
               for cuts in _valid_cuts(offsets, 0, count, width))


def _valid_cuts(offsets: list[int], first: int, lines: int, width: int
                ) -> Iterator[tuple[int, ...]]:
    """Line starts after word `first` that give `lines` lines, each fitting the width."""
    last = len(offsets) - 1
    if lines == 1:
        if _line_fits(offsets, first, last, width):
            yield ()
        return
    for cut in range(first + 1, last - lines + 2):
        if not _line_fits(offsets, first, cut, width):
            break  # longer lines fit no better
        for rest in _valid_cuts(offsets, cut, lines - 1, width):
            yield (cut, *rest)


def _line_fits(offsets: list[int], first: int, end: int, width: int) -> bool:
    return end - first == 1 or offsets[end] - offsets[first] - 1 <= width


def _layout_cost(cuts: tuple[int, ...], offsets: list[int], penalties: Sequence[float],
                 width: int) -> float:
    bounds = (0, *cuts, len(offsets) - 1)
    lengths = [offsets[b] - offsets[a] - 1 for a, b in pairwise(bounds)]
    spread = (max(lengths) - min(lengths)) / width
    top_heavy = sum(max(0, upper - lower) for upper, lower in pairwise(lengths)) / width
    return sum(penalties[c] for c in cuts) + 4 * spread + 6 * top_heavy


# --- splitting runs into cues ----------------------------------------------------------------

class _RunSplitter:
    """Cuts one run into cues with the least total penalty (dynamic programming over cuts)."""

    def __init__(self, run: _Run, rules: LayoutRules) -> None:
        self.run, self.rules = run, rules
        self.texts = [token.text for token in run.tokens]
        self.penalties = _penalties(self.texts)

    def drafts(self) -> list[_Draft]:
        size, run = len(self.texts), self.run
        best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * size
        for end in range(1, size + 1):
            for start in range(end - 1, -1, -1):
                lengths = self._lengths(start, end)
                lines = _line_count(lengths, self.rules.max_chars_per_line)
                if lines > self.rules.max_lines and start < end - 1:
                    break  # a longer cue fits no better
                cost = best[start][0] + self._cost(start, end, lengths, lines)
                best[end] = min(best[end], (cost, start))
        points = _cut_points(best, size)
        return [_Draft(run.tokens[a:b], run.speaker, run.is_lyric,
                       run.label if a == 0 else None, opens_run=a == 0)
                for a, b in pairwise(points)]

    def _lengths(self, start: int, end: int) -> list[int]:
        label = self.run.label if start == 0 else None
        prefix, suffix = _affixes(self.run.is_lyric, label, self.rules)
        lengths = [len(text) for text in self.texts[start:end]]
        lengths[0] += len(prefix)
        lengths[-1] += len(suffix)
        return lengths

    def _cost(self, start: int, end: int, lengths: list[int], lines: int) -> float:
        rules, tokens = self.rules, self.run.tokens
        last = end == len(tokens)
        # a bad cut between cues hurts more than a bad line break inside one
        boundary = 0.0 if last else 3 * self.penalties[end]
        chars = sum(lengths) + len(lengths) - 1
        fill = min(chars / (rules.max_lines * rules.max_chars_per_line), 1.0)
        duration = tokens[end - 1].end - tokens[start].start
        return (CUE_COST + boundary + 4 * (1 - fill) ** 2
                + _timing_cost(duration, chars, last, rules)
                + self._layout_cost(start, end, lengths, lines))

    def _layout_cost(self, start: int, end: int, lengths: list[int], lines: int) -> float:
        # trying every 3-line layout of every candidate cue is too slow; the final cues get it
        if lines > 2:
            return 0.0
        penalties = self.penalties[start:end]
        return _best_cuts(lengths, penalties, self.rules.max_chars_per_line)[0]


def _cut_points(best: list[tuple[float, int]], size: int) -> list[int]:
    points, end = [size], size
    while end > 0:
        end = best[end][1]
        points.append(end)
    return points[::-1]


def _timing_cost(duration: float, chars: int, last: bool, rules: LayoutRules) -> float:
    over = max(0.0, duration - rules.max_duration_s)
    # only the run's last cue can stretch into the silence after it
    short = 0.0 if last else max(0.0, rules.min_duration_s - duration) / rules.min_duration_s
    cps = chars / max(duration, rules.min_duration_s)
    fast = max(0.0, cps - rules.max_cps) / rules.max_cps
    return 50 * over + 10 * short + 10 * fast


# --- merging and timing ----------------------------------------------------------------------

def _merge_brief_runs(drafts: list[_Draft], rules: LayoutRules) -> list[_Draft]:
    """Join a cue with the next run of the same speaker when either is too brief to read alone."""
    merged: list[_Draft] = []
    for draft in drafts:
        if merged and _can_merge(merged[-1], draft, rules):
            first = merged[-1]
            merged[-1] = _Draft(first.tokens + draft.tokens, first.speaker, first.is_lyric,
                                first.label, first.opens_run)
        else:
            merged.append(draft)
    return merged


def _can_merge(first: _Draft, then: _Draft, rules: LayoutRules) -> bool:
    same_voice = (first.speaker, first.is_lyric) == (then.speaker, then.is_lyric)
    close = then.start - first.end < rules.min_duration_s
    if not (then.opens_run and same_voice and close):
        return False
    cramped = _needed_s(_words(first, rules), rules) > then.start - first.start
    brief = then.end - then.start < rules.min_duration_s
    joined = _Draft(first.tokens + then.tokens, first.speaker, first.is_lyric, first.label, True)
    return ((cramped or brief) and joined.end - joined.start <= rules.max_duration_s
            and _fits_cue(_words(joined, rules), rules))


def _fits_cue(words: list[str], rules: LayoutRules) -> bool:
    lengths = [len(word) for word in words]
    return _line_count(lengths, rules.max_chars_per_line) <= rules.max_lines


def _words(draft: _Draft, rules: LayoutRules) -> list[str]:
    """The cue's words with label and lyric marks glued on, so they count toward line length."""
    prefix, suffix = _affixes(draft.is_lyric, draft.label, rules)
    words = [token.text for token in draft.tokens]
    words[0] = prefix + words[0]
    words[-1] = words[-1] + suffix
    return words


def _needed_s(words: list[str], rules: LayoutRules) -> float:
    """Display time the text needs: the minimum duration or its reading time, within the max."""
    reading = len(" ".join(words)) / rules.max_cps
    return min(max(rules.min_duration_s, reading), rules.max_duration_s)


def _to_cue(draft: _Draft, rules: LayoutRules) -> Cue:
    words = _words(draft, rules)
    penalties = _penalties([token.text for token in draft.tokens])
    _, cuts = _best_cuts([len(w) for w in words], penalties, rules.max_chars_per_line)
    lines = tuple(" ".join(words[a:b]) for a, b in pairwise((0, *cuts, len(words))))
    return Cue(draft.start, draft.end, lines, draft.is_lyric, draft.speaker)


def _centis(seconds: float) -> int:
    return round(seconds * 100)


def _centis_up(seconds: float) -> int:
    return math.ceil(seconds * 100 - 1e-6)  # tolerate float noise: 0.08 s is 8, not 9


def _centis_down(seconds: float) -> int:
    return math.floor(seconds * 100 + 1e-6)


def _retime(cues: list[Cue], rules: LayoutRules) -> list[Cue]:
    """Final times on a centisecond grid: long enough, short enough, `min_gap_s` apart."""
    gap = _centis_up(rules.min_gap_s)
    longest = _centis_down(rules.max_duration_s)
    # overlapping speech pushes the next cue back rather than flash this one for a few frames
    floor = min(_centis_up(rules.min_duration_s / 2), longest)
    timed: list[Cue] = []
    for index, cue in enumerate(cues):
        start = _centis(cue.start)
        if timed:
            start = max(start, _centis(timed[-1].end) + gap)
        needed = _centis_up(_needed_s(list(cue.lines), rules))
        end = start + min(max(_centis(cue.end) - start, needed), longest)
        if index + 1 < len(cues):
            end = min(end, _centis(cues[index + 1].start) - gap)
        end = max(end, start + floor)
        timed.append(Cue(start / 100, end / 100, cue.lines, cue.is_lyric, cue.speaker))
    return timed
