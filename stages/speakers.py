"""speakers: the diarization's speakers put on the aligned transcript's words and segments.

Each word gets the speaker whose turns overlap it most (the nearest turn within
`max_gap_s` when none overlaps); each segment gets the speaker holding most of its words'
time. Labels are renumbered SPEAKER_1, SPEAKER_2, ... in order of first appearance, so the
same film gives the same labels however the diarizer named its clusters. Then speakers
the film names are given their character's name (`character_names.py`: self-introductions
and answering when called, against the TMDB characters in the glossary), with the evidence
in `speaker_names.json`. Without a diarization (the stage is optional and may be skipped)
the transcript passes through unlabelled.
"""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from pydantic import Field

from bolly_ray.errors import StageError
from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.character_names import name_speakers
from bolly_ray.stages.glossary import Glossary
from bolly_ray.transcript import ChecksTranscriptInputs, Transcript, Word, read_transcript

Turn = tuple[float, float, str]


class SpeakerSettings(StageSettings):
    max_gap_s: float = Field(default=0.5, ge=0, le=10, description="A word outside every "
                             "turn takes the nearest turn's speaker when it is this close")
    name_characters: bool = Field(default=True, description="Name speakers who introduce "
                                  "themselves or answer to a character's name")


class SpeakersStage(ChecksTranscriptInputs, Stage):
    spec = StageSpec(
        name="speakers", inputs=("aligned_transcript",),
        optional_inputs=("diarization", "glossary"),
        outputs=("speaker_transcript", "speaker_names"), settings_model=SpeakerSettings,
        # names said in Devanagari are matched to the cast in Roman script
        image_requirements=("aksharamukha>=2.3,<3",),
        resources=Resources(cpus=1, memory_mb=512), version="2")

    def run(self, ctx: StageContext, model: Any = None) -> StageResult:
        settings = ctx.settings
        assert isinstance(settings, SpeakerSettings)
        transcript = read_transcript(ctx.inputs["aligned_transcript"])
        diarization = ctx.inputs.get("diarization")
        record: dict[str, Any] = {"characters": [], "evidence": [], "decisions": []}
        if diarization is not None:
            transcript = assign_speakers(transcript, read_turns(diarization), settings.max_gap_s)
            if settings.name_characters:
                transcript, record = name_speakers(
                    transcript, film_characters(ctx.inputs.get("glossary")))
        transcript.write(ctx.out_dir / "transcript.json")
        (ctx.out_dir / "speaker_names.json").write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        named = sum(1 for d in record["decisions"] if d["name"])
        return StageResult(outputs={"speaker_transcript": "transcript.json",
                                    "speaker_names": "speaker_names.json"},
                           metrics={"speakers": len(transcript.speakers or []), "named": named})


def film_characters(glossary: Path | None) -> list[str] | None:
    """The TMDB characters in the glossary, in billing order; None when there are none."""
    if glossary is None:
        return None
    characters = [t.preferred for t in Glossary.read(glossary).terms if t.source == "character"]
    return characters or None


def read_turns(path: Path) -> list[Turn]:
    try:
        turns = json.loads(path.read_text())["turns"]
        return sorted((float(t["start"]), float(t["end"]), str(t["speaker"])) for t in turns)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StageError(f"{path}: not a diarization ({type(err).__name__}: {err})") from None


def assign_speakers(transcript: Transcript, turns: list[Turn], max_gap_s: float) -> Transcript:
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
                                         "speakers": list(names.values())})


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
