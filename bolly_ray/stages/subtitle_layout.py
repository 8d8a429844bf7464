"""Subtitle layout: a transcript becomes timed, line-broken cues that follow house standards.

Pure functions, no I/O. Each segment is tokenised (its text is the truth; word timings are used
when they match the text word for word, otherwise time is shared out in proportion to
characters) and cut into speaker runs, so no cue crosses a speaker change. A dynamic programme
splits each run into cues that fit `max_lines` x `max_chars_per_line` and are readable at
`max_cps` within `max_duration_s`, preferring cuts at sentence ends, then clauses (after , ; :
or at a pause in unpunctuated ASR text), then before conjunctions (and, but, so, because, that;
aur, lekin, par, ki, to), and pricing the reading speed each cue would need in the time before
the next. A run too brief to read alone joins a close neighbour of the same speaker. Two turns
of different speakers share a cue only as a Netflix-style dialogue cue, made when either is too
brief to read alone and each fits one line: one line per speaker, each opening with "- " (a dash
and a space, counted in the line length; with `speaker_labels` "name", "- [NAME] text"; with
"none", never); a brief turn beside a longer one takes the clause next to it as the other line.
Each cue's lines are chosen among all layouts with the fewest lines by break quality and a
balanced, bottom-heavy shape. Finally cues are placed on a centisecond grid (exact in SRT, VTT
and ASS alike), `min_gap_s` apart, each holding at least its reading time at `max_cps` (and half
`min_duration_s`), as near its speech as least squares allow: a cue too fast for its own time
borrows the silence before and after it, and where none is left its neighbours shift with it.
Merging and dialogue cues come first; borrowing always succeeds, so characters / duration <=
`max_cps` holds for every cue (save a single word longer than `max_cps` x `max_duration_s`
characters). Then each cue is stretched into free time for `min_duration_s` and to cover its
speech, capped at `max_duration_s`.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate, groupby, pairwise
from typing import Literal

from bolly_ray.stages.formats.transcript import Segment, Transcript

SENTENCE_END = (".", "?", "!", "…", "।", "॥")
CLAUSE_END = (",", ";", ":", "–", "—")
CLOSING_MARKS = "\"'”’)]»"
PUNCTUATION = string.punctuation + CLOSING_MARKS + "“‘«¿¡।॥…–—"
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "prof."})
# A clause may start with these: the best place for a new line or cue after punctuation.
CONJUNCTIONS = frozenset({
    "and", "but", "or", "nor", "so", "yet", "because", "that", "which", "who", "whom",
    "whose", "when", "where", "while", "if", "unless", "until", "although", "though", "since",
    "whereas", "then",
    "और", "लेकिन", "मगर", "कि", "या", "क्योंकि", "जब", "अगर", "तो", "फिर",
    "aur", "lekin", "magar", "par", "ki", "to", "toh", "kyunki", "kyonki", "agar", "jab", "ya",
    "phir", "isliye", "warna",
})
# A phrase may start with these: prepositions and comparisons, a weaker place to break.
BREAK_BEFORE = frozenset({
    "than", "of", "in", "on", "at", "for", "with", "without", "from", "by", "about", "into",
    "after", "before", "like", "as",
})
CLAUSE_PAUSE_S = 0.3
"""A silence this long between words marks a clause where the recogniser wrote no comma."""
DIALOGUE_DASH = "- "
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


SpeakerLabels = Literal["none", "dash", "name"]
"""How speakers show: not at all (two speakers never share a cue), dialogue dashes when two
share a cue, or dashes and [NAME] whenever the speaker changes."""


@dataclass(frozen=True)
class LayoutRules:
    max_chars_per_line: int = 42
    max_lines: int = 2
    max_cps: float = 17.0
    min_duration_s: float = 5 / 6
    max_duration_s: float = 7.0
    min_gap_frames: int = 2
    frame_rate: float = 25.0
    speaker_labels: SpeakerLabels = "dash"
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

    speakers: tuple[str | None, ...] = ()
    """A dialogue cue's speakers, one per line; empty for a cue of one speaker."""

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
    closes_run: bool

    @property
    def start(self) -> float:
        return self.tokens[0].start

    @property
    def end(self) -> float:
        return self.tokens[-1].end


@dataclass(frozen=True)
class _Dialogue:
    """Two short turns of different speakers shown together, one line each."""

    first: _Draft
    then: _Draft


def build_cues(transcript: Transcript, rules: LayoutRules) -> list[Cue]:
    """Timed, laid-out cues for a transcript: sorted, non-empty and never overlapping."""
    runs = _with_labels(list(_runs(transcript)), rules)
    split = [draft for run, room in zip(runs, _next_starts(runs), strict=True)
             for draft in _RunSplitter(run, rules, room).drafts()]
    drafts = _split_for_dialogue(_merge_brief_runs(split, rules), rules)
    return _retime([_to_cue(item, rules) for item in _pair_dialogue(drafts, rules)], rules)


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


def _next_starts(runs: list[_Run]) -> list[float]:
    """When the run after each run starts (never, after the last)."""
    return [following.tokens[0].start for following in runs[1:]] + [math.inf] if runs else []


def _with_labels(runs: list[_Run], rules: LayoutRules) -> list[_Run]:
    labelled, previous = [], None
    for run in runs:
        changed = run.speaker is not None and run.speaker != previous
        label = run.speaker if rules.speaker_labels == "name" and changed else None
        labelled.append(_Run(run.tokens, run.speaker, run.is_lyric, label))
        previous = run.speaker
    return labelled


# --- line breaking ---------------------------------------------------------------------------

def _bare(word: str) -> str:
    return word.strip(PUNCTUATION).lower()


def _break_penalty(before: str, after: str, pause_s: float = 0.0) -> float:
    """How bad it is to end a line (or cue) after `before` and start the next with `after`,
    when `pause_s` of silence lies between them."""
    if before.lower() in ABBREVIATIONS:
        return 10.0
    tail = before.rstrip(CLOSING_MARKS)
    if tail.endswith(SENTENCE_END):
        return 0.0
    if tail.endswith(CLAUSE_END):
        return 1.0
    if _bare(before) in NO_BREAK_AFTER or _bare(after) in NO_BREAK_BEFORE or not _bare(after):
        return 10.0
    if pause_s >= CLAUSE_PAUSE_S:
        return 1.5
    if _bare(after) in CONJUNCTIONS:
        return 2.0
    if _bare(after) in BREAK_BEFORE:
        return 3.0
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


def _penalties(tokens: Sequence[_Token]) -> list[float]:
    """Entry i: the cost of a line or cue break just before word i (entry 0 is unused)."""
    return [0.0, *(_break_penalty(a.text, b.text, b.start - a.end)
                   for a, b in pairwise(tokens))]


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
    """Cuts one run into cues with the least total penalty (dynamic programming over cuts).

    `room` is when the next run starts: the run's last cue may stay up until just before it."""

    def __init__(self, run: _Run, rules: LayoutRules, room: float = math.inf) -> None:
        self.run, self.rules, self.room = run, rules, room
        self.texts = [token.text for token in run.tokens]
        self.penalties = _penalties(run.tokens)

    def drafts(self) -> list[_Draft]:
        size, run = len(self.texts), self.run
        best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * size
        for end in range(1, size + 1):
            for start in range(end - 1, -1, -1):
                lengths = self._lengths(start, end)
                lines = _line_count(lengths, self.rules.max_chars_per_line)
                if not self._fits(lengths, lines) and start < end - 1:
                    break  # a longer cue fits no better
                cost = best[start][0] + self._cost(start, end, lengths, lines)
                best[end] = min(best[end], (cost, start))
        points = _cut_points(best, size)
        return [_Draft(run.tokens[a:b], run.speaker, run.is_lyric,
                       run.label if a == 0 else None, opens_run=a == 0, closes_run=b == size)
                for a, b in pairwise(points)]

    def _fits(self, lengths: list[int], lines: int) -> bool:
        """Within the line limits, and readable at `max_cps` within `max_duration_s`."""
        chars = sum(lengths) + len(lengths) - 1
        return lines <= self.rules.max_lines and _readable_in_time(chars, self.rules)

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
        until = self.room if last else tokens[end].start
        available = until - rules.min_gap_s - tokens[start].start
        return (CUE_COST + boundary + 4 * (1 - fill) ** 2
                + _timing_cost(duration, available, chars, rules)
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


def _timing_cost(duration: float, available: float, chars: int, rules: LayoutRules) -> float:
    """Spoken for too long, or too brief or too fast to read in the time before the next cue
    (time borrowed from neighbours later is a last resort)."""
    over = max(0.0, duration - rules.max_duration_s)
    available = max(available, rules.min_duration_s / 2)
    short = max(0.0, rules.min_duration_s - available) / rules.min_duration_s
    fast = max(0.0, chars / available - rules.max_cps) / rules.max_cps
    return 50 * over + 10 * short + 20 * fast


def _readable_in_time(chars: int, rules: LayoutRules) -> bool:
    return chars <= rules.max_cps * rules.max_duration_s


# --- merging and pairing ---------------------------------------------------------------------

def _merge_brief_runs(drafts: list[_Draft], rules: LayoutRules) -> list[_Draft]:
    """Join a cue with the next run of the same speaker when either is too brief to read alone."""
    merged: list[_Draft] = []
    for draft in drafts:
        if merged and _can_merge(merged[-1], draft, rules):
            merged[-1] = _joined(merged[-1], draft)
        else:
            merged.append(draft)
    return merged


def _joined(first: _Draft, then: _Draft) -> _Draft:
    return _Draft(first.tokens + then.tokens, first.speaker, first.is_lyric, first.label,
                  first.opens_run, then.closes_run)


def _can_merge(first: _Draft, then: _Draft, rules: LayoutRules) -> bool:
    same_voice = (first.speaker, first.is_lyric) == (then.speaker, then.is_lyric)
    close = then.start - first.end < rules.min_duration_s
    if not (then.opens_run and same_voice and close):
        return False
    cramped = _needed_s(_words(first, rules), rules) > then.start - first.start
    brief = then.end - then.start < rules.min_duration_s
    words = _words(_joined(first, then), rules)
    return ((cramped or brief) and then.end - first.start <= rules.max_duration_s
            and _fits_cue(words, rules) and _readable_in_time(len(" ".join(words)), rules))


def _split_for_dialogue(drafts: list[_Draft], rules: LayoutRules) -> list[_Draft]:
    """Where a turn too brief to read alone meets a neighbour too long for one dialogue line,
    cut the neighbour's clause next to it off, so the two can share a dialogue cue."""
    work = list(drafts)
    for index in range(len(work) - 1, -1, -1):  # backwards: a split never moves what is left
        _split_beside(work, index, rules)
    return work


def _split_beside(work: list[_Draft], index: int, rules: LayoutRules) -> None:
    """For a brief turn at `index`: the clause before it, else the one after it, becomes a
    draft of its own when the two then make a dialogue cue and what is left stays readable."""
    if not _is_brief_turn(work, index, rules):
        return
    turn, gap, after = work[index], rules.min_gap_s, _start_at(work, index + 1)
    if index > 0 and _is_dialogue(work[index - 1], turn, after, rules):
        return  # it pairs as it is
    if index > 0 and (pieces := _clause_cut(work[index - 1], rules, keep_tail=True)):
        head, tail = pieces
        if (_is_dialogue(tail, turn, after, rules)
                and tail.start - gap - head.start >= rules.min_duration_s):
            work[index - 1:index] = [head, tail]
            return
    if index + 1 < len(work) and (pieces := _clause_cut(work[index + 1], rules, keep_tail=False)):
        head, tail = pieces
        if (_is_dialogue(turn, head, tail.start, rules)
                and _start_at(work, index + 2) - gap - tail.start >= rules.min_duration_s):
            work[index + 1:index + 2] = [head, tail]


def _is_brief_turn(work: list[_Draft], index: int, rules: LayoutRules) -> bool:
    """A whole turn (other speakers' cues on both sides) too brief to read in its own time."""
    turn = work[index]
    neighbours = [work[i] for i in (index - 1, index + 1) if 0 <= i < len(work)]
    alone = all(other.speaker != turn.speaker for other in neighbours)
    own_s = _start_at(work, index + 1) - rules.min_gap_s - turn.start
    brief = own_s < _needed_s([_dialogue_line(turn, rules)], rules)
    return turn.opens_run and turn.closes_run and alone and brief


def _start_at(drafts: list[_Draft], index: int) -> float:
    return drafts[index].start if index < len(drafts) else math.inf


def _clause_cut(draft: _Draft, rules: LayoutRules, keep_tail: bool
                ) -> tuple[_Draft, _Draft] | None:
    """The draft cut in two at its best clause boundary (no worse than before a conjunction)
    such that the piece on the `keep_tail` side fits one dialogue line; None if none does."""
    penalties = _penalties(draft.tokens)
    fitting = [cut for cut in range(1, len(draft.tokens)) if penalties[cut] <= 2.0
               and _fits_dialogue_line(_slice(draft, cut, keep_tail), rules)]
    if not fitting:
        return None
    # the best break, then the fullest line
    cut = min(fitting, key=lambda c: (penalties[c], c if keep_tail else -c))
    return _slice(draft, cut, False), _slice(draft, cut, True)


def _slice(draft: _Draft, cut: int, tail: bool) -> _Draft:
    if tail:
        return _Draft(draft.tokens[cut:], draft.speaker, draft.is_lyric, None, False,
                      draft.closes_run)
    return _Draft(draft.tokens[:cut], draft.speaker, draft.is_lyric, draft.label,
                  draft.opens_run, False)


def _fits_dialogue_line(draft: _Draft, rules: LayoutRules) -> bool:
    return len(_dialogue_line(draft, rules)) <= rules.max_chars_per_line


def _pair_dialogue(drafts: list[_Draft], rules: LayoutRules) -> list[_Draft | _Dialogue]:
    """Each draft alone, or with the next as a dialogue cue when `_is_dialogue` says so."""
    items: list[_Draft | _Dialogue] = []
    index = 0
    while index < len(drafts):
        first = drafts[index]
        then = drafts[index + 1] if index + 1 < len(drafts) else None
        after = drafts[index + 2].start if index + 2 < len(drafts) else math.inf
        if then is not None and _is_dialogue(first, then, after, rules):
            items.append(_Dialogue(first, then))
            index += 2
        else:
            items.append(first)
            index += 1
    return items


def _is_dialogue(first: _Draft, then: _Draft, after: float, rules: LayoutRules) -> bool:
    """Two turns of known, different speakers that meet, each one line with its dash, when
    either is too brief to read alone and together they are readable in time."""
    turns = (first.closes_run and then.opens_run and not first.is_lyric and not then.is_lyric
             and None not in (first.speaker, then.speaker) and first.speaker != then.speaker)
    if not (turns and rules.speaker_labels != "none" and rules.max_lines >= 2
            and then.start - first.end < rules.min_duration_s):
        return False
    lines = [_dialogue_line(draft, rules) for draft in (first, then)]
    gap = rules.min_gap_s
    brief = (then.start - gap - first.start < _needed_s(lines[:1], rules)
             or after - gap - then.start < _needed_s(lines[1:], rules))
    return (brief and all(_fits_dialogue_line(draft, rules) for draft in (first, then))
            and max(first.end, then.end) - first.start <= rules.max_duration_s
            and _readable_in_time(len(" ".join(lines)), rules))


def _dialogue_line(draft: _Draft, rules: LayoutRules) -> str:
    """One speaker's line of a dialogue cue: the dash, the label when labels are on, the words."""
    label = f"[{draft.speaker}] " if rules.speaker_labels == "name" else ""
    return DIALOGUE_DASH + label + " ".join(token.text for token in draft.tokens)


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


def _needed_s(lines: list[str], rules: LayoutRules) -> float:
    """Display time the text needs: the minimum duration or its reading time, within the max."""
    return min(max(rules.min_duration_s, _reading_s(lines, rules)), rules.max_duration_s)


def _reading_s(lines: Sequence[str], rules: LayoutRules) -> float:
    """Time to read the lines at `max_cps` (a line break counts as one character)."""
    return len(" ".join(lines)) / rules.max_cps


def _to_cue(item: _Draft | _Dialogue, rules: LayoutRules) -> Cue:
    if isinstance(item, _Dialogue):
        first, then = item.first, item.then
        lines: tuple[str, ...] = (_dialogue_line(first, rules), _dialogue_line(then, rules))
        return Cue(first.start, max(first.end, then.end), lines,
                   speakers=(first.speaker, then.speaker))
    words = _words(item, rules)
    _, cuts = _best_cuts([len(w) for w in words], _penalties(item.tokens),
                         rules.max_chars_per_line)
    lines = tuple(" ".join(words[a:b]) for a, b in pairwise((0, *cuts, len(words))))
    return Cue(item.start, item.end, lines, item.is_lyric, item.speaker)


# --- timing ----------------------------------------------------------------------------------

def _centis(seconds: float) -> int:
    return round(seconds * 100)


def _centis_up(seconds: float) -> int:
    return math.ceil(seconds * 100 - 1e-6)  # tolerate float noise: 0.08 s is 8, not 9


def _centis_down(seconds: float) -> int:
    return math.floor(seconds * 100 + 1e-6)


def _retime(cues: list[Cue], rules: LayoutRules) -> list[Cue]:
    """Final times on a centisecond grid: readable, long enough, short enough, `min_gap_s` apart.

    Each cue first gets the time it must hold (its reading time, at least half the minimum
    duration) at a start as near its speech as the cues around it allow; then it is stretched
    into the free time after it for the minimum duration and to cover its speech."""
    if not cues:
        return []
    gap = _centis_up(rules.min_gap_s)
    longest = _centis_down(rules.max_duration_s)
    # overlapping speech shifts cues rather than flash one for a few frames
    floor = min(_centis_up(rules.min_duration_s / 2), longest)
    shortest = min(_centis_up(rules.min_duration_s), longest)
    holds = [min(max(_centis_up(_reading_s(cue.lines, rules)), floor), longest) for cue in cues]
    starts = _placed_starts([_centis(cue.start) for cue in cues], holds, gap)
    limits = [start - gap for start in starts[1:]] + [math.inf]
    timed = []
    for cue, start, hold, limit in zip(cues, starts, holds, limits, strict=True):
        wanted = max(_centis(cue.end), start + shortest, start + hold)
        end = max(min(wanted, start + longest, limit), start + hold)
        timed.append(Cue(start / 100, end / 100, cue.lines, cue.is_lyric, cue.speaker,
                         cue.speakers))
    return timed


def _placed_starts(wanted: list[int], holds: list[int], gap: int) -> list[int]:
    """Starts nearest the wanted ones (least squares, none before 0) such that each cue holds
    for its time and the next starts `gap` after it.

    With offset_i the time the cues before i hold, gaps included, the condition is that
    start_i - offset_i never decreases: an isotonic regression, solved by pooling adjacent
    violators (each pool of cues shifts as one block to its mean wish)."""
    offsets = list(accumulate((hold + gap for hold in holds[:-1]), initial=0))
    pools: list[tuple[int, int]] = []  # (sum of wished levels, number of cues)
    for level in (w - o for w, o in zip(wanted, offsets, strict=True)):
        pool = (level, 1)
        while pools and pools[-1][0] * pool[1] > pool[0] * pools[-1][1]:
            total, count = pools.pop()
            pool = (pool[0] + total, pool[1] + count)
        pools.append(pool)
    levels = [max(0, (2 * total + count) // (2 * count)) for total, count in pools
              for _ in range(count)]
    return [level + offset for level, offset in zip(levels, offsets, strict=True)]
