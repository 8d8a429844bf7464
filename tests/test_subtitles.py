"""The subtitles stage, end to end: a real transcript goes in, and every file it writes is read
back with an independent parser (pysubs2 for SRT and ASS, webvtt-py for VTT) and checked
against the layout rules: line length and count, duration, reading speed, gaps, text kept
word for word and in order, ♪ and italics on lyrics, speaker labels and dialogue dashes.
Layout quality (where lines break, word timings) is pinned on small hand-made segments.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pysubs2
import pytest
import webvtt
from pydantic import ValidationError

from bolly_ray.errors import StageError
from bolly_ray.spec import StageContext, StageResult
from bolly_ray.stages.formats.transcript import Segment, Transcript, Word, read_transcript
from bolly_ray.stages.subtitle_layout import LayoutRules, build_cues
from bolly_ray.stages.subtitles import SubtitleSettings, SubtitlesStage

LONG_WORD = "Supercalifragilisticexpialidocious" + "Antidisestablish"
MONOLOGUE = (
    "Listen to me carefully, because I am only going to say this once. When I was a boy in "
    "the village, my father worked in the fields from dawn until dusk, and he never once "
    "complained about the heat or the rain. He told me that a man is measured not by what he "
    "owns but by what he gives to the people around him. I have tried to live by that all my "
    "life, and now I am asking you to do the same for your brother and your mother.")
LYRIC = ("Tum hi ho, ab tum hi ho, zindagi ab tum hi ho, chain bhi, mera dard bhi, "
         "meri aashiqui ab tum hi ho")
LABEL = re.compile(r"^\[([^\]]+)\] ")
DASH = "- "
SETTINGS = {
    "default": SubtitleSettings(),
    "32 chars, 1 line": SubtitleSettings(max_chars_per_line=32, max_lines=1),
    "labels": SubtitleSettings(speaker_labels="name"),
    "no speakers": SubtitleSettings(speaker_labels="none"),
    "3 lines, 24 fps": SubtitleSettings(
        max_chars_per_line=37, max_lines=3, max_cps=20, min_duration_s=1.0, max_duration_s=5.0,
        frame_rate=24, min_gap_frames=3, speaker_labels="name", lyric_marker="#"),
}


def timed_words(text: str, start: float, step: float = 0.4) -> list[Word]:
    return [Word(text=word, start=start + i * step, end=start + i * step + 0.3)
            for i, word in enumerate(text.split())]


def film_transcript(language: str = "hi") -> Transcript:
    question, answer = "Where were you last night?", "I waited for hours at the station."
    return Transcript(language=language, segments=[
        Segment(start=0.0, end=24.0, text=MONOLOGUE, speaker="RAVI"),
        Segment(start=25.0, end=32.7, text=f"{question}   {answer}", speaker="PRIYA",
                words=timed_words(question, 25.0) + timed_words(answer, 30.0)),
        Segment(start=32.72, end=33.1, text="Yes.", speaker="PRIYA"),
        Segment(start=33.12, end=33.5, text=" No. ", speaker="RAVI"),
        Segment(start=36.0, end=44.0, text=LYRIC, speaker="SINGER", is_lyric=True),
        Segment(start=45.0, end=47.0, text=f"He said {LONG_WORD} twice.", speaker="RAVI"),
        Segment(start=48.0, end=50.0, text="Wait for me!", speaker="RAVI"),
        Segment(start=48.5, end=49.5, text="Hurry up!", speaker="PRIYA"),
        Segment(start=52.0, end=52.3, text="Bye.", speaker="RAVI"),
        Segment(start=55.0, end=64.0, text="Ooo", speaker="SINGER", is_lyric=True),
    ])


# --- running the stage and reading its files back ---------------------------------------------

def run_stage(tmp: Path, transcript: Transcript | str, settings: SubtitleSettings,
              out: str = "out") -> tuple[StageResult, Path]:
    source = tmp / "transcript.json"
    if isinstance(transcript, str):
        source.write_text(transcript, encoding="utf-8")
    else:
        transcript.write(source)
    ctx = StageContext(stage="subtitles", settings=settings, inputs={"transcript": source},
                       out_dir=tmp / out, job={"name": "film", "source_language": "en"},
                       deadline=time.monotonic() + 60, log=logging.getLogger("t"))
    result = SubtitlesStage().run(ctx)
    return result, tmp / out / result.outputs["subtitles"]


@dataclass(frozen=True)
class Parsed:
    start_ms: int
    end_ms: int
    lines: tuple[str, ...]
    italic: bool

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


def parse_srt(path: Path) -> list[Parsed]:
    subs = pysubs2.load(str(path), encoding="utf-8", format_="srt")
    return [Parsed(e.start, e.end, tuple(e.plaintext.split("\n")), r"{\i1}" in e.text)
            for e in subs]


def parse_ass(path: Path) -> list[Parsed]:
    subs = pysubs2.load(str(path), encoding="utf-8", format_="ass")
    return [Parsed(e.start, e.end, tuple(e.plaintext.split("\n")), subs.styles[e.style].italic)
            for e in subs]


def parse_vtt(path: Path) -> list[Parsed]:
    return [Parsed(_ms(c.start_time), _ms(c.end_time), tuple(c.text.split("\n")),
                   "<i>" in c.raw_text)
            for c in webvtt.read(str(path))]


def _ms(stamp: webvtt.models.Timestamp) -> int:
    return ((stamp.hours * 60 + stamp.minutes) * 60 + stamp.seconds) * 1000 + stamp.milliseconds


PARSERS = {"srt": parse_srt, "ass": parse_ass, "vtt": parse_vtt}


# --- what every cue list must satisfy ----------------------------------------------------------

def is_dialogue(cue: Parsed) -> bool:
    return len(cue.lines) == 2 and all(line.startswith(DASH) for line in cue.lines)


def line_words(line: str) -> str:
    """A dialogue line's words: its dash and label removed."""
    return LABEL.sub("", line.removeprefix(DASH))


def core_words(cue: Parsed, marker: str) -> list[str]:
    """The transcript's words in a cue: dialogue dashes, labels and lyric marks removed."""
    if is_dialogue(cue):
        return " ".join(line_words(line) for line in cue.lines).split()
    text = LABEL.sub("", " ".join(cue.lines))
    if marker and text.startswith(f"{marker} "):
        text = text[len(marker) + 1:-len(marker) - 1]
    return text.split()


def is_tight(cue: Parsed, following: Parsed | None, rules: LayoutRules) -> bool:
    """The next cue leaves no more room: the gap is the minimum (on the centisecond grid)."""
    return (following is not None
            and following.start_ms - cue.end_ms < rules.min_gap_s * 1000 + 10)


def check_lines(cues: list[Parsed], rules: LayoutRules) -> None:
    for cue in cues:
        assert 1 <= len(cue.lines) <= rules.max_lines, cue
        for line in cue.lines:
            single_word = len(core_words(Parsed(0, 0, (line,), False), rules.lyric_marker)) == 1
            assert line == line.strip() and "  " not in line, cue
            assert len(line) <= rules.max_chars_per_line or single_word, cue
        for line in cue.lines[:-1]:
            assert line.split()[-1].lower() not in {"a", "an", "the"}, cue


def check_timing(cues: list[Parsed], rules: LayoutRules) -> None:
    for cue, following in zip(cues, [*cues[1:], None], strict=True):
        tight = is_tight(cue, following, rules)
        cps = len(" ".join(cue.lines)) / cue.duration_s
        assert cue.duration_s <= rules.max_duration_s + 1e-9, cue
        assert cue.duration_s >= rules.min_duration_s - 1e-9 or tight, cue
        assert cue.duration_s >= rules.min_duration_s / 2 - 0.01, cue
        assert cps <= rules.max_cps + 1e-9, cue
        if following is not None:
            assert following.start_ms - cue.end_ms >= rules.min_gap_s * 1000 - 1e-6, cue


def check_text(cues: list[Parsed], transcript: Transcript, rules: LayoutRules) -> None:
    segments = sorted(transcript.segments, key=lambda s: s.start)
    expected = [word for segment in segments for word in segment.text.split()]
    assert [w for cue in cues for w in core_words(cue, rules.lyric_marker)] == expected


def check_lyrics(cues: list[Parsed], transcript: Transcript, rules: LayoutRules) -> None:
    marker = rules.lyric_marker
    sung = [w for s in transcript.segments if s.is_lyric for w in s.text.split()]
    lyric_cues = [cue for cue in cues if LABEL.sub("", cue.lines[0]).startswith(f"{marker} ")]
    assert [w for cue in lyric_cues for w in core_words(cue, marker)] == sung
    for cue in cues:
        assert cue.italic == (cue in lyric_cues), cue
    for cue in lyric_cues:
        assert cue.lines[-1].endswith(f" {marker}"), cue


def check_labels(ass_path: Path, enabled: bool) -> None:
    """A cue is labelled when its speaker changes; both lines of a dialogue cue always are."""
    previous = None
    for event in pysubs2.load(str(ass_path), encoding="utf-8"):
        lines = event.plaintext.split("\n")
        if is_dialogue(Parsed(0, 0, tuple(lines), False)):
            speakers = event.name.split(" & ")
            labels = [LABEL.match(line.removeprefix(DASH)) for line in lines]
            assert [m.group(1) if m else None for m in labels] == (
                speakers if enabled else [None, None]), event
            previous = speakers[-1]
            continue
        label = LABEL.match(event.plaintext)
        speaker = event.name or None
        wanted = enabled and speaker is not None and speaker != previous
        assert (label.group(1) if label else None) == (speaker if wanted else None), event
        previous = speaker


def check_dialogue(cues: list[Parsed], rules: LayoutRules) -> None:
    """The overlapping "Wait for me!" / "Hurry up!" is the film's one dialogue cue."""
    dialogues = [cue for cue in cues if is_dialogue(cue)]
    if rules.max_lines < 2 or rules.speaker_labels == "none":
        assert dialogues == []
        return
    [cue] = dialogues
    assert [line_words(line) for line in cue.lines] == ["Wait for me!", "Hurry up!"]


# --- the stage, end to end ---------------------------------------------------------------------

@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_every_file_follows_the_rules(tmp_path: Path, settings: SubtitleSettings) -> None:
    transcript, rules = film_transcript(), settings.layout_rules()
    _, folder = run_stage(tmp_path, transcript, settings)
    parsed = {fmt: PARSERS[fmt](folder / f"film.hi.{fmt}") for fmt in settings.formats}
    assert parsed["srt"] == parsed["vtt"] == parsed["ass"]
    for cues in parsed.values():
        check_lines(cues, rules)
        check_timing(cues, rules)
        check_text(cues, transcript, rules)
        check_lyrics(cues, transcript, rules)
        check_dialogue(cues, rules)
    check_labels(folder / "film.hi.ass", settings.speaker_labels == "name")


def test_the_overlong_word_keeps_a_line_of_its_own(tmp_path: Path) -> None:
    _, folder = run_stage(tmp_path, film_transcript(), SubtitleSettings())
    lines = [line for cue in parse_srt(folder / "film.hi.srt") for line in cue.lines]
    assert LONG_WORD in lines
    assert all(len(line) <= 42 for line in lines if line != LONG_WORD)


def test_result_and_ass_header(tmp_path: Path) -> None:
    result, folder = run_stage(tmp_path, film_transcript(), SubtitleSettings(font_size=52))
    ass = pysubs2.load(str(folder / "film.hi.ass"), encoding="utf-8")
    assert result.outputs == {"subtitles": "subtitles"}
    assert result.metrics == {"cues": len(ass), "languages": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["film.hi.ass", "film.hi.srt", "film.hi.vtt"]
    assert (ass.info["PlayResX"], ass.info["PlayResY"]) == ("1920", "1080")
    default, lyrics = ass.styles["Default"], ass.styles["Lyrics"]
    assert (default.fontname, default.fontsize, default.outline, default.marginv) == (
        "Arial", 52, 2.0, 40)
    assert lyrics.italic and not default.italic
    assert SubtitlesStage.spec.inputs == ("transcript",)


def test_each_speaker_has_an_ass_style_of_its_own(tmp_path: Path) -> None:
    _, folder = run_stage(tmp_path, film_transcript(), SubtitleSettings())
    ass = pysubs2.load(str(folder / "film.hi.ass"), encoding="utf-8")
    speakers = {event.name for event in ass
                if event.name and " & " not in event.name and event.style != "Lyrics"}
    assert len(speakers) >= 2 and speakers <= set(ass.styles)  # sung lines keep Lyrics
    for event in ass:
        lyric = event.style == "Lyrics"
        wanted = "Default" if " & " in event.name or not event.name else event.name
        assert lyric or event.style == wanted, event
        assert ass.styles[event.style].fontname == "Arial"


def test_speaker_labels_from_job_files_that_said_true_or_false() -> None:
    assert SubtitleSettings(speaker_labels=True).speaker_labels == "name"
    assert SubtitleSettings(speaker_labels=False).speaker_labels == "dash"
    with pytest.raises(ValueError, match="'none', 'dash' or 'name'"):
        SubtitleSettings(speaker_labels="loud")


def test_runs_are_byte_identical(tmp_path: Path) -> None:
    settings = SubtitleSettings(speaker_labels="name")
    _, first = run_stage(tmp_path, film_transcript(), settings, out="one")
    _, second = run_stage(tmp_path, film_transcript(), settings, out="two")
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert all((first / n).read_bytes() == (second / n).read_bytes() for n in names)


def test_formats_and_language_fallback(tmp_path: Path) -> None:
    settings = SubtitleSettings(formats=["vtt", "srt", "vtt"], italic_lyrics=False)
    _, folder = run_stage(tmp_path, film_transcript(language=""), settings)
    assert sorted(p.name for p in folder.iterdir()) == ["film.en.srt", "film.en.vtt"]
    srt = (folder / "film.en.srt").read_text(encoding="utf-8")
    assert "♪" in srt and "<i>" not in srt


@pytest.mark.parametrize("content", [
    "{not json",
    '{"language": "en", "segments": [{"start": -1, "end": 2, "text": "x"}]}',
    '{"language": "en", "segments": [{"start": 3, "end": 2, "text": "x"}], "extra": 1}',
])
def test_a_bad_transcript_is_one_line_naming_the_file(tmp_path: Path, content: str) -> None:
    with pytest.raises(StageError, match=r"transcript\.json: not a valid transcript") as error:
        run_stage(tmp_path, content, SubtitleSettings())
    assert "\n" not in str(error.value)


def test_a_missing_transcript_is_named() -> None:
    with pytest.raises(StageError, match=r"nothing\.json: cannot read the transcript"):
        read_transcript(Path("/nonexistent/nothing.json"))


def test_a_language_that_is_no_code_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StageError, match=r"'\.\./x' is not a language code"):
        run_stage(tmp_path, film_transcript(language="../x"), SubtitleSettings())


def test_an_empty_transcript_writes_empty_files(tmp_path: Path) -> None:
    result, folder = run_stage(tmp_path, Transcript(language="hi"), SubtitleSettings())
    assert result.metrics == {"cues": 0, "languages": 1}
    assert parse_srt(folder / "film.hi.srt") == parse_vtt(folder / "film.hi.vtt") == []


@pytest.mark.parametrize("bad", [
    {"min_duration_s": 8.0, "max_duration_s": 7.0},
    {"max_lines": 0},
    {"max_chars_per_line": 5},
    {"formats": ["doc"]},
    {"formats": []},
    {"lyric_marker": "{x}"},
    {"colour": "red"},
])
def test_settings_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SubtitleSettings.model_validate(bad)


# --- layout quality on small segments ----------------------------------------------------------

def one_segment(text: str, end: float = 5.0, words: list[Word] | None = None) -> Transcript:
    return Transcript(language="en",
                      segments=[Segment(start=0.0, end=end, text=text, words=words or [])])


@pytest.mark.parametrize(("text", "lines"), [
    ("I went to the market yesterday morning and bought some fresh vegetables.",
     ("I went to the market yesterday morning", "and bought some fresh vegetables.")),
    ("Where were you last night? I waited for you at the station.",
     ("Where were you last night?", "I waited for you at the station.")),
    ("We walked all the way to the beautiful temple on the hill.",
     ("We walked all the way", "to the beautiful temple on the hill.")),
    ("Short and sweet.", ("Short and sweet.",)),
    ("Maine usse kaha tha ki main kal subah jaldi aaunga ghar",  # Hinglish "that"
     ("Maine usse kaha tha", "ki main kal subah jaldi aaunga ghar")),
    ("Main ghar jaana chahta tha par baarish bahut tez ho rahi thi",  # Hinglish "but"
     ("Main ghar jaana chahta tha", "par baarish bahut tez ho rahi thi")),
])
def test_lines_break_at_natural_points(text: str, lines: tuple[str, ...]) -> None:
    [cue] = build_cues(one_segment(text), LayoutRules())
    assert cue.lines == lines


@pytest.mark.parametrize(("text", "end", "shown_s"), [
    ("Okay.", 0.2, 0.84),  # the minimum duration, on the centisecond grid
    ("We have to leave right now, before the police arrive here.", 1.0, 3.42),  # 58 chars at 17 cps
    ("Ooo", 9.0, 7.0),  # a held note: capped at the maximum
])
def test_cues_stretch_into_silence_within_limits(text: str, end: float, shown_s: float) -> None:
    [cue] = build_cues(one_segment(text, end=end), LayoutRules())
    assert cue.end - cue.start == pytest.approx(shown_s)


def test_word_timings_time_the_split_cues() -> None:
    question, answer = "Where were you last night?", "I waited for hours at the station."
    words = timed_words(question, 1.0) + timed_words(answer, 6.0)
    cues = build_cues(one_segment(f"{question} {answer}", end=8.7, words=words), LayoutRules())
    assert [(c.start, c.lines) for c in cues] == [(1.0, (question,)), (6.0, (answer,))]
    assert cues[0].end == pytest.approx(2.9)


def test_without_words_time_is_shared_by_characters() -> None:
    rules = LayoutRules(max_cps=20)
    cues = build_cues(one_segment(MONOLOGUE, end=24.0), rules)
    assert cues[0].start == 0.0
    assert cues[-1].end == pytest.approx(24.0, abs=0.2)
    shares = [len(c.text) / (c.end - c.start + 0.08) for c in cues[:-1]]
    assert max(shares) - min(shares) < 1.0  # same characters per second throughout


def test_speech_faster_than_max_cps_borrows_time_and_never_reads_faster() -> None:
    # 424 characters in 24 s is 17.7 per second: the cues read at 17 and run on past 24 s
    cues = build_cues(one_segment(MONOLOGUE, end=24.0), LayoutRules())
    assert cues[0].start == 0.0
    assert all(len(c.text) / (c.end - c.start) <= 17.0 for c in cues)
    assert all(b.start - a.end == pytest.approx(0.08) for a, b in pairwise(cues))
    assert cues[-1].end == pytest.approx(sum(len(c.text) for c in cues) / 17 + 0.08 * 5, abs=0.1)


def test_speakers_share_a_cue_only_as_dialogue() -> None:
    words = [Word(text="Hello", start=0.0, end=0.4, speaker="A"),
             Word(text="there.", start=0.4, end=0.8, speaker="A"),
             Word(text="Hi!", start=0.9, end=1.2, speaker="B")]
    transcript = one_segment("Hello there. Hi!", end=1.2, words=words)
    [cue] = build_cues(transcript, LayoutRules(speaker_labels="name"))
    assert (cue.speaker, cue.speakers, cue.lines) == (None, ("A", "B"),
                                                      ("- [A] Hello there.", "- [B] Hi!"))
    [cue] = build_cues(transcript, LayoutRules())
    assert cue.lines == ("- Hello there.", "- Hi!")
    apart = build_cues(transcript, LayoutRules(speaker_labels="none"))
    assert [(c.speaker, c.lines) for c in apart] == [("A", ("Hello there.",)), ("B", ("Hi!",))]
    [first, then] = build_cues(transcript, LayoutRules(max_lines=1, speaker_labels="name"))
    assert [(c.speaker, c.lines) for c in (first, then)] == [("A", ("[A] Hello there.",)),
                                                             ("B", ("[B] Hi!",))]
    assert then.start - first.end >= 0.08 - 1e-9


def test_turns_long_enough_to_read_alone_keep_their_own_cues() -> None:
    words = [Word(text="Hello", start=0.0, end=0.5, speaker="A"),
             Word(text="there.", start=0.5, end=1.2, speaker="A"),
             Word(text="Hi!", start=1.5, end=2.0, speaker="B")]
    cues = build_cues(one_segment("Hello there. Hi!", end=2.0, words=words), LayoutRules())
    assert [(c.speaker, c.lines) for c in cues] == [("A", ("Hello there.",)), ("B", ("Hi!",))]


def test_overlapping_speech_never_overlaps_on_screen() -> None:
    transcript = Transcript(language="en", segments=[
        Segment(start=2.0, end=3.0, text="Run!", speaker="A"),
        Segment(start=2.0, end=3.0, text="Now!", speaker="B"),
        Segment(start=2.0, end=2.5, text="Go!", speaker="C"),
    ])
    cues = build_cues(transcript, LayoutRules())
    assert [c.lines for c in cues] == [("- Run!", "- Now!"), ("Go!",)]  # dialogue, then alone
    assert all(b.start - a.end >= 0.08 - 1e-9 for a, b in pairwise(cues))
    assert all(c.end > c.start for c in cues)
