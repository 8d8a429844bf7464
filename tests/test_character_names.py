"""Speakers named as characters: self-introductions and answering when called, against the
film's TMDB characters; a speaker nothing names keeps its label. The speakers stage runs on
a real diarization-shaped input (turns JSON) and a glossary with characters, as in a job."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from bolly_ray.spec import StageContext
from bolly_ray.stages.character_names import name_speakers
from bolly_ray.stages.formats.glossary import Glossary, Term
from bolly_ray.stages.formats.transcript import Segment, Transcript, read_transcript
from bolly_ray.stages.speakers import SpeakerSettings, SpeakersStage

CAST = ["Raj Malhotra", "Simran Singh", "Baldev Singh"]


def dialogue(lines: list[tuple[str, str]]) -> Transcript:
    return Transcript(language="en", speakers=sorted({s for s, _ in lines}), segments=[
        Segment(start=2.0 * n, end=2.0 * n + 1.5, text=text, speaker=speaker)
        for n, (speaker, text) in enumerate(lines)])


def speakers_of(transcript: Transcript) -> list[str | None]:
    return [s.speaker for s in transcript.segments]


def test_two_speakers_who_introduce_themselves_and_one_nobody_names() -> None:
    transcript = dialogue([
        ("SPEAKER_1", "Hello, I'm Raj. I came about the room."),
        ("SPEAKER_2", "My name is Simran. The room is upstairs."),
        ("SPEAKER_3", "Lunch is ready, come down."),
        ("SPEAKER_1", "Thank you, we are coming.")])
    named, record = name_speakers(transcript, CAST)
    assert speakers_of(named) == ["Raj", "Simran", "SPEAKER_3", "Raj"]
    assert named.speakers == ["Raj", "Simran", "SPEAKER_3"]
    decisions = {d["speaker"]: d for d in record["decisions"]}
    assert decisions["SPEAKER_1"]["name"] == "Raj" and decisions["SPEAKER_1"]["confidence"] == 1
    assert decisions["SPEAKER_3"]["name"] is None
    assert {e["kind"] for e in record["evidence"]} == {"introduces themself"}


def test_answering_when_called_twice_names_a_speaker_once_does_not() -> None:
    lines = [("SPEAKER_1", "Simran, where are you going?"), ("SPEAKER_2", "To the station."),
             ("SPEAKER_1", "The train leaves at nine."), ("SPEAKER_2", "I know.")]
    named, record = name_speakers(dialogue(lines), CAST)
    assert speakers_of(named) == ["SPEAKER_1", "SPEAKER_2", "SPEAKER_1", "SPEAKER_2"]
    assert record["evidence"][0]["kind"] == "answers when called"
    lines += [("SPEAKER_1", "Come home early, Simran!"), ("SPEAKER_2", "Yes, Papa.")]
    named, _ = name_speakers(dialogue(lines), CAST)
    assert speakers_of(named)[1::2] == ["Simran"] * 3


def test_hindi_and_hinglish_introductions_meet_the_cast_in_roman_script() -> None:
    transcript = dialogue([("SPEAKER_1", "मैं राज हूँ, और तुम?"),
                           ("SPEAKER_2", "Arre, mera naam Simran hai.")])
    named, _ = name_speakers(transcript, CAST)
    assert speakers_of(named) == ["Raj", "Simran"]


def test_names_outside_the_cast_and_weak_or_split_evidence_name_nobody() -> None:
    transcript = dialogue([
        ("SPEAKER_1", "I'm Vikram, the new driver."),  # not a character of this film
        ("SPEAKER_2", "This is Raj speaking. No, this is Baldev."),  # split evidence
        ("SPEAKER_3", "I'm fine, thank you.")])
    named, record = name_speakers(transcript, CAST)
    assert speakers_of(named) == ["SPEAKER_1", "SPEAKER_2", "SPEAKER_3"]
    assert [d["name"] for d in record["decisions"]] == [None, None, None]
    # without a cast, a capitalised name in an introduction is enough; "fine" is not a name
    named, _ = name_speakers(transcript, None)
    assert speakers_of(named)[0] == "Vikram" and speakers_of(named)[2] == "SPEAKER_3"


def test_a_name_goes_to_one_speaker_the_best_supported() -> None:
    transcript = dialogue([("SPEAKER_1", "I'm Raj."), ("SPEAKER_1", "Yes, I am Raj."),
                           ("SPEAKER_2", "I'm Raj too, they say.")])
    named, _ = name_speakers(transcript, CAST)
    assert speakers_of(named) == ["Raj", "Raj", "SPEAKER_2"]


def test_the_speakers_stage_names_characters_from_the_glossary(tmp_path: Path) -> None:
    transcript = dialogue([("SPEAKER_00", "I'm Raj."), ("SPEAKER_01", "Simran here, hello.")])
    aligned = tmp_path / "aligned.json"
    Transcript(language="en", segments=[s.model_copy(update={"speaker": None})
                                        for s in transcript.segments]).write(aligned)
    turns = tmp_path / "diarization.json"
    turns.write_text(json.dumps({"model": "test", "speakers": ["A", "B"], "turns": [
        {"start": 0.0, "end": 1.6, "speaker": "A"}, {"start": 1.9, "end": 3.6, "speaker": "B"}]}))
    glossary = tmp_path / "glossary.json"
    glossary.write_text(Glossary(terms=[
        Term(term=c, preferred=c, source="character", is_name=True) for c in CAST]
        ).model_dump_json())
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(stage="speakers", settings=SpeakerSettings(), inputs={
        "aligned_transcript": aligned, "diarization": turns, "glossary": glossary},
        out_dir=out, job={"source_language": "en"}, deadline=time.monotonic() + 60,
        log=logging.getLogger("test"))
    result = SpeakersStage().run(ctx)
    written = read_transcript(ctx.out_dir / result.outputs["speaker_transcript"])
    assert [s.speaker for s in written.segments] == ["Raj", "SPEAKER_2"]
    record = json.loads((ctx.out_dir / result.outputs["speaker_names"]).read_text())
    assert record["characters"] == CAST and result.metrics["named"] == 1
    [raj] = [d for d in record["decisions"] if d["name"] == "Raj"]
    assert raj["billing"] == CAST.index("Raj Malhotra") + 1
