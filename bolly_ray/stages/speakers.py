"""speakers: the diarization's speakers put on the aligned transcript's words and segments.

Each word gets the speaker whose turns overlap it most (the nearest turn within
`max_gap_s` when none overlaps); each segment gets the speaker holding most of its words'
time. Labels are renumbered SPEAKER_1, SPEAKER_2, ... in order of first appearance, so the
same film gives the same labels however the diarizer named its clusters. Then speakers
the film names are given their character's name (`character_names.py`: self-introductions
and answering when called, against the TMDB characters in the glossary), with the evidence
in `speaker_names.json`; a job that brings a library's voice bank (`voice_bank.py`) also
names a speaker whose voice the bank knows. Every speaker's voice, with the person where
the film named it, goes to `speaker_voices.json` (what `bolly-ray voices learn` banks).
Without a diarization (the stage is optional and may be skipped) the transcript passes
through unlabelled.
"""

from __future__ import annotations

import bisect
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from bolly_ray.errors import StageError
from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.character_names import VOICE_BANK, Evidence, name_forms, name_speakers
from bolly_ray.stages.formats.glossary import PLAYED_BY, Glossary
from bolly_ray.stages.formats.transcript import (
    ChecksTranscriptInputs,
    Transcript,
    Word,
    read_transcript,
)
from bolly_ray.stages.voice_bank import FilmVoice, FilmVoices, nearest, read_bank

Turn = tuple[float, float, str]
log = logging.getLogger(__name__)


class SpeakerSettings(StageSettings):
    voice_match: float = Field(default=0.1, gt=0, lt=1, description="A speaker whose voice "
                               "is this near (cosine distance) a voice in the job's voice "
                               "bank is that person")
    max_gap_s: float = Field(default=0.5, ge=0, le=10, description="A word outside every "
                             "turn takes the nearest turn's speaker when it is this close")
    name_characters: bool = Field(default=True, description="Name speakers who introduce "
                                  "themselves or answer to a character's name")


class SpeakersStage(ChecksTranscriptInputs, Stage[SpeakerSettings]):
    spec = StageSpec(
        name="speakers", inputs=("aligned_transcript",),
        optional_inputs=("diarization", "glossary", "voice_bank"),
        outputs=("speaker_transcript", "speaker_names", "speaker_voices"),
        settings_model=SpeakerSettings, job_fields=("title", "year", "name"),
        # names said in Devanagari are matched to the cast in Roman script
        image_requirements=("aksharamukha>=2.3,<3",),
        resources=Resources(cpus=1, memory_mb=512), version="3")

    def check_input(self, artifact: str, path: Path) -> str | None:
        if artifact != "voice_bank":
            return super().check_input(artifact, path)
        try:
            read_bank(path)
        except StageError as err:
            return str(err)
        return None

    def run(self, ctx: StageContext[SpeakerSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["aligned_transcript"])
        diarization = ctx.inputs.get("diarization")
        record: dict[str, Any] = {"characters": [], "evidence": [], "decisions": []}
        voices = FilmVoices(film=film_label(ctx.job))
        if diarization is not None:
            transcript, numbering = number_speakers(transcript, read_turns(diarization),
                                                    settings.max_gap_s)
            voice_model, raw = read_voices(diarization)
            heard = {numbering[s]: v for s, v in raw.items() if s in numbering}
            cast = film_cast(ctx.inputs.get("glossary"))
            if settings.name_characters:
                banked = bank_evidence(heard, voice_model, ctx.inputs.get("voice_bank"),
                                       cast, settings.voice_match)
                transcript, record = name_speakers(
                    transcript, [character for character, _ in cast] or None, banked)
            voices = film_voices(voices.film, voice_model, heard, record["decisions"], cast)
        transcript.write(ctx.out_dir / "transcript.json")
        (ctx.out_dir / "speaker_names.json").write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        (ctx.out_dir / "speaker_voices.json").write_text(voices.model_dump_json(indent=2) + "\n")
        named = sum(1 for d in record["decisions"] if d["name"])
        return StageResult(outputs={"speaker_transcript": "transcript.json",
                                    "speaker_names": "speaker_names.json",
                                    "speaker_voices": "speaker_voices.json"},
                           metrics={"speakers": len(transcript.speakers or []), "named": named})


def film_label(job: Mapping[str, Any]) -> str:
    """How the bank lists this film: its title and year, else the job's name."""
    if job.get("title"):
        return f"{job['title']} ({job['year']})" if job.get("year") else str(job["title"])
    return str(job.get("name") or "film")


def film_cast(glossary: Path | None) -> list[tuple[str, str | None]]:
    """The TMDB characters in the glossary, in billing order, each with its actor."""
    if glossary is None:
        return []
    return [(t.preferred, t.notes.removeprefix(PLAYED_BY) if t.notes.startswith(PLAYED_BY)
             else None) for t in Glossary.read(glossary).terms if t.source == "character"]


def bank_evidence(heard: dict[str, list[float]], voice_model: str | None,
                  bank_file: Path | None, cast: list[tuple[str, str | None]],
                  threshold: float) -> list[Evidence]:
    """A speaker whose voice is a banked person's: evidence for the character that person
    plays in this cast (or, with no cast, for the person's name)."""
    if bank_file is None:
        return []
    bank = read_bank(bank_file)
    if bank.model != voice_model:
        log.warning("speakers: the voice bank holds %s voices, this diarization made %s: "
                    "not compared", bank.model, voice_model)
        return []
    evidence = []
    for speaker, embedding in heard.items():
        match = nearest(bank, embedding)
        if match is None or match[1] > threshold:
            continue
        person, distance = match
        plays = [character for character, actor in cast if actor == person]
        name = plays[0].split()[0] if plays else (None if cast else person)
        if name:
            films = ", ".join(bank.voices[person].films)
            evidence.append(Evidence(speaker, name, VOICE_BANK, -1,
                                     f"{distance:.3f} from {person}'s voice ({films})"))
    return evidence


def film_voices(film: str, voice_model: str | None, heard: dict[str, list[float]],
                decisions: list[dict[str, Any]], cast: list[tuple[str, str | None]]
                ) -> FilmVoices:
    """Every speaker's voice under its final label, with the person it belongs to where
    the film named it (the actor who plays that character, else the name)."""
    names = {d["speaker"]: d["name"] for d in decisions if d["name"]}
    voices = []
    for speaker, embedding in heard.items():
        name = names.get(speaker)
        actors = [actor for character, actor in cast
                  if name and actor and name in name_forms(character)]
        person = actors[0] if actors else name
        voices.append(FilmVoice(speaker=name or speaker, person=person, embedding=embedding))
    return FilmVoices(film=film, model=voice_model, voices=voices)


def read_turns(path: Path) -> list[Turn]:
    try:
        turns = json.loads(path.read_text())["turns"]
        return sorted((float(t["start"]), float(t["end"]), str(t["speaker"])) for t in turns)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StageError(f"{path}: not a diarization ({type(err).__name__}: {err})") from None


def read_voices(path: Path) -> tuple[str | None, dict[str, list[float]]]:
    """The diarization's voice embeddings by its speaker label, and their encoder."""
    found = json.loads(path.read_text())
    return found.get("voice_model"), dict(found.get("voices") or {})


def assign_speakers(transcript: Transcript, turns: list[Turn], max_gap_s: float) -> Transcript:
    return number_speakers(transcript, turns, max_gap_s)[0]


def number_speakers(transcript: Transcript, turns: list[Turn], max_gap_s: float
                    ) -> tuple[Transcript, dict[str, str]]:
    """The transcript with speakers on words and segments, and the diarization's label ->
    SPEAKER_n numbering (in order of first appearance)."""
    finder = TurnFinder(turns, max_gap_s)
    names: dict[str, str] = {}

    def label(raw: str | None) -> str | None:
        if raw is None:
            return None
        return names.setdefault(raw, f"SPEAKER_{len(names) + 1}")

    segments = []
    for segment in transcript.segments:
        words = [w.model_copy(update={"speaker": label(finder.speaker(w.start, w.end))})
                 for w in segment.words]
        speaker = majority(words) or label(finder.speaker(segment.start, segment.end))
        segments.append(segment.model_copy(update={"words": words, "speaker": speaker}))
    return transcript.model_copy(update={"segments": segments,
                                         "speakers": list(names.values())}), names


def majority(words: list[Word]) -> str | None:
    held: dict[str, float] = defaultdict(float)
    for word in words:
        if word.speaker is not None:
            held[word.speaker] += max(word.end - word.start, 0.01)
    return max(held, key=lambda s: held[s]) if held else None


class TurnFinder:
    """Speaker lookup by time over turns sorted by start."""

    def __init__(self, turns: list[Turn], max_gap_s: float) -> None:
        self.turns = turns
        self.starts = [t[0] for t in turns]
        self.longest = max((end - start for start, end, _ in turns), default=0.0)
        self.max_gap_s = max_gap_s

    def speaker(self, start: float, end: float) -> str | None:
        overlap: dict[str, float] = defaultdict(float)
        first = bisect.bisect_left(self.starts, start - self.longest)
        last = bisect.bisect_right(self.starts, end)
        for turn_start, turn_end, who in self.turns[first:last]:
            shared = min(end, turn_end) - max(start, turn_start)
            if shared > 0 or (shared == 0 and start == end and turn_start <= start <= turn_end):
                overlap[who] += max(shared, 1e-6)
        if overlap:
            return max(overlap, key=lambda s: overlap[s])
        return self._nearest(start, end)

    def _nearest(self, start: float, end: float) -> str | None:
        best, distance = None, self.max_gap_s
        first = bisect.bisect_left(self.starts, start - self.longest - self.max_gap_s)
        last = bisect.bisect_right(self.starts, end + self.max_gap_s)
        for turn_start, turn_end, who in self.turns[first:last]:
            gap = max(turn_start - end, start - turn_end)
            if 0 <= gap <= distance:
                best, distance = who, gap
        return best
