"""Diarized speakers named as the film's characters, from what the film itself says.

Evidence for a speaker: introducing themself in their own line ("I'm Raj", "My name is
Simran", "This is Raj", Hinglish "main Raj hoon", "mera naam Simran hai", Devanagari
"मैं राज हूँ", "मेरा नाम सिमरन है") counts INTRODUCTION; being called by name at the start
or end of someone else's line ("Simran, ..." / "..., Simran?") and answering in the next
line counts CALLED. When the film has a cast (the glossary's TMDB characters), only their
names count, matched word by word under `ner`'s romanisation key (Simran ~ सिमरन); without
one, only introductions count, and only a capitalised name. A speaker takes the name with
the most support when that is at least MIN_SUPPORT and MIN_SHARE of all its evidence; a
name goes to one speaker, the best supported; every other speaker keeps its SPEAKER_n.
The cast comes in billing order: a word in two characters' names (a shared surname) names
the higher billed one, and each decision records its character's place in the cast.
Every piece of evidence and each decision, with its confidence, is returned for the
record (`speaker_names.json`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from bolly_ray.stages.formats.transcript import Transcript
from bolly_ray.stages.ner import romanised
from bolly_ray.stages.transliterate import DEVANAGARI_WORD, romanise_word

INTRODUCTION, CALLED, VOICE = 3.0, 1.0, 2.0
VOICE_BANK = "voice known from the bank"
MIN_SUPPORT, MIN_SHARE = 2.0, 0.6
NAME = r"([A-Z][\w'-]+|[\u0900-\u097F]+)"
INTRODUCTIONS = [re.compile(p, re.IGNORECASE) for p in (
    rf"\b(?:i'm|i am|my name is|my name's|this is|call me)\s+{NAME}",
    rf"\b(?:main|mai)\s+{NAME}\s+(?:hoon|hun|hu)\b",
    rf"\bmera naam\s+{NAME}\s+(?:hai|he)\b",
    rf"मैं\s+{NAME}\s+हूँ", rf"मेरा\s+नाम\s+{NAME}\s+है")]
CALLS = [re.compile(rf"^\s*{NAME}\s*[,!]"), re.compile(rf",\s*{NAME}\s*[?!.।]*\s*$")]


@dataclass(frozen=True)
class Evidence:
    speaker: str
    name: str
    kind: str  # "introduces themself", "answers when called" or VOICE_BANK
    segment: int
    text: str


@dataclass(frozen=True)
class Decision:
    speaker: str
    name: str | None
    support: float
    confidence: float
    billing: int | None = None  # the character's place in the cast list, 1 for the lead


def key(word: str) -> str:
    """`ner`'s matching key, Devanagari romanised first (सिमरन ~ Simran)."""
    return romanised(DEVANAGARI_WORD.sub(lambda m: romanise_word(m.group()), word))


def name_forms(character: str) -> list[str]:
    """How the film may say a character's name: whole, or any word of it."""
    return [character, *character.split()]


def characters_by_key(characters: list[str]) -> dict[str, str]:
    """Each word of each character's name (and the whole name) by its matching key."""
    keys: dict[str, str] = {}
    for character in characters:
        for part in name_forms(character):
            if len(part) > 1 and (found := key(part)):
                keys.setdefault(found, part)
    return keys


def name_in(found: str, characters: dict[str, str] | None) -> str | None:
    """The character a found word names, or the word itself where there is no cast."""
    if characters is None:
        return found if found[:1].isupper() and found.isalpha() else None
    matched = key(found)
    return characters.get(matched) if matched else None


def gather(transcript: Transcript, characters: dict[str, str] | None) -> list[Evidence]:
    evidence = []
    segments = transcript.segments
    for index, segment in enumerate(segments):
        if segment.speaker is None:
            continue
        for pattern in INTRODUCTIONS:
            for match in pattern.finditer(segment.text):
                name = name_in(match.group(1), characters)
                if name:
                    evidence.append(Evidence(segment.speaker, name, "introduces themself",
                                             index, segment.text))
        answer = segments[index + 1] if index + 1 < len(segments) else None
        if characters is None or answer is None or answer.speaker in (None, segment.speaker):
            continue
        for pattern in CALLS:
            called = pattern.search(segment.text)
            name = name_in(called.group(1), characters) if called else None
            if name:
                evidence.append(Evidence(answer.speaker, name, "answers when called",
                                         index + 1, answer.text))
    return evidence


def decide(evidence: list[Evidence], speakers: list[str]) -> list[Decision]:
    support: dict[str, dict[str, float]] = {s: defaultdict(float) for s in speakers}
    for item in evidence:
        weight = {"introduces themself": INTRODUCTION, VOICE_BANK: VOICE}.get(item.kind, CALLED)
        support.setdefault(item.speaker, defaultdict(float))[item.name] += weight
    candidates = []
    for speaker, names in support.items():
        if names:
            name = max(names, key=lambda n: names[n])
            share = names[name] / sum(names.values())
            if names[name] >= MIN_SUPPORT and share >= MIN_SHARE:
                candidates.append(Decision(speaker, name, names[name], round(share, 2)))
    taken: set[str] = set()
    chosen: dict[str, Decision] = {}
    for decision in sorted(candidates, key=lambda d: (-d.support, -d.confidence)):
        if decision.name not in taken:
            taken.add(str(decision.name))
            chosen[decision.speaker] = decision
    return [chosen.get(s, Decision(s, None, 0.0, 0.0)) for s in support]


def with_billing(decision: Decision, characters: list[str] | None) -> Decision:
    places = [place for place, character in enumerate(characters or [], start=1)
              if decision.name and decision.name in name_forms(character)]
    return replace(decision, billing=places[0]) if places else decision


def name_speakers(transcript: Transcript, characters: list[str] | None,
                  known_voices: Sequence[Evidence] = ()) -> tuple[Transcript, dict]:
    """The transcript with named speakers relabelled, and the record of why; voices a
    voice bank knows come as evidence of their own."""
    keys = characters_by_key(characters) if characters else None
    evidence = [*gather(transcript, keys), *known_voices]
    decisions = [with_billing(d, characters) for d in
                 decide(evidence, list(transcript.speakers or []))]
    names = {d.speaker: d.name for d in decisions if d.name}
    segments = [s.model_copy(update={
        "speaker": names.get(s.speaker or "", s.speaker),
        "words": [w.model_copy(update={"speaker": names.get(w.speaker or "", w.speaker)})
                  for w in s.words]}) for s in transcript.segments]
    speakers = [names.get(s, s) for s in transcript.speakers or []]
    record = {"characters": characters or [], "evidence": [asdict(e) for e in evidence],
              "decisions": [asdict(d) for d in decisions]}
    return transcript.model_copy(update={"segments": segments, "speakers": speakers}), record
