"""The voice bank: voices a library's films named, learnt by `bolly-ray voices learn`, name
the same voices in the next job that brings the bank. Real speech: pyannote.audio's call,
whose two women introduce themselves in the first half; the second half, cut off, names
nobody, so only the bank can name them there."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bolly_ray.ops.demo import conversation_audio
from bolly_ray.stages.character_names import VOICE_BANK
from bolly_ray.stages.speakers import bank_evidence
from bolly_ray.stages.voice_bank import FilmVoice, FilmVoices, VoiceBank, learn
from tests.conftest import assert_one_line_error, bolly

AFTER_INTRODUCTIONS_S = 17.7  # "And I'm Sheila ..." ends at 17.77 s


def test_a_bank_learnt_from_one_job_names_the_same_voices_in_the_next(
        conversation_demo: Path, tmp_path: Path) -> None:
    call = conversation_audio()
    assert call is not None, "scripts/test installs the ml extra, which ships the call"
    learnt = bolly("voices", "learn", conversation_demo, "--bank", "bank.json", cwd=tmp_path)
    assert learnt.returncode == 0, learnt.stderr
    assert learnt.stderr.splitlines() == ["a telephone call: Sheila, Diane",
                                          "wrote bank.json: 2 voice(s)"]
    later = tmp_path / "later.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-ss", str(AFTER_INTRODUCTIONS_S), "-i", str(call),
                    "-c", "copy", str(later)], check=True)
    prepared = bolly("prepare", later, "--id", "later", "--source-language", "en",
                     "--target-language", "en", "--voice-bank", "bank.json",
                     "--set", "asr.model=tiny.en", "-o", "later.job.json", cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    done = bolly("run", "later.job.json", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_dir = Path(json.loads(done.stdout)["jobs"][0]["job_dir"])
    [names] = job_dir.glob("*_speakers/speaker_names.json")
    record = json.loads(names.read_text())
    assert {e["kind"] for e in record["evidence"]} == {VOICE_BANK}  # nobody says a name here
    assert sorted(d["name"] for d in record["decisions"]) == ["Diane", "Sheila"]
    [transcript] = job_dir.glob("*_speakers/transcript.json")
    first_words = {s["speaker"]: s["text"] for s in
                   reversed(json.loads(transcript.read_text())["segments"])}
    assert "Chicago also" in first_words["Diane"] and "Yankee" in first_words["Sheila"]


def test_learning_averages_a_person_over_films_and_keeps_one_encoder() -> None:
    first = FilmVoices(film="A (2001)", model="enc", voices=[
        FilmVoice(speaker="Raj", person="Actor One", embedding=[1.0, 0.0]),
        FilmVoice(speaker="SPEAKER_2", embedding=[0.0, 1.0])])
    bank, learnt = learn(None, first)
    assert learnt == ["Actor One"] and list(bank.voices) == ["Actor One"]
    second = FilmVoices(film="B (2003)", model="enc", voices=[
        FilmVoice(speaker="Rahul", person="Actor One", embedding=[0.0, 1.0])])
    bank, _ = learn(bank, second)
    voice = bank.voices["Actor One"]
    assert voice.films == ["A (2001)", "B (2003)"]
    assert voice.embedding == pytest.approx([0.70711, 0.70711])
    again, _ = learn(bank, second)  # a film counts once
    assert again.voices["Actor One"].films == ["A (2001)", "B (2003)"]
    with pytest.raises(Exception, match="a bank keeps one speaker encoder's voices"):
        learn(bank, FilmVoices(film="C", model="other", voices=second.voices))


def test_a_banked_actor_names_the_character_they_play_in_this_cast(tmp_path: Path) -> None:
    bank = tmp_path / "bank.json"
    bank.write_text(VoiceBank(model="enc", voices={
        "Actor One": {"embedding": [1.0, 0.0], "films": ["A (2001)"]}}).model_dump_json())
    heard = {"SPEAKER_1": [0.99, 0.05], "SPEAKER_2": [0.0, 1.0]}
    cast = [("Rahul Khanna", "Actor One"), ("Anjali Sharma", "Actor Two")]
    [found] = bank_evidence(heard, "enc", bank, cast, 0.1)
    assert (found.speaker, found.name, found.kind) == ("SPEAKER_1", "Rahul", VOICE_BANK)
    assert "from Actor One's voice (A (2001))" in found.text
    assert bank_evidence(heard, "enc", bank, [("Simran", "Actor Three")], 0.1) == []
    assert bank_evidence(heard, "other encoder", bank, cast, 0.1) == []
    assert [e.name for e in bank_evidence(heard, "enc", bank, [], 0.1)] == ["Actor One"]


def test_voices_learn_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    assert_one_line_error(bolly("voices", "learn", tmp_path, "--bank", "bank.json",
                                cwd=tmp_path), 2, "has published speaker voices")
    (tmp_path / "bank.json").write_text("{not json")
    job = tmp_path / "job"
    job.mkdir()
    (job / "manifest.json").write_text(json.dumps({"job_id": "j", "stages": {"speakers": {
        "status": "succeeded", "outputs": {"speaker_voices": {
            "path": "voices.json", "sha256": "0" * 64, "bytes": 2}}}}}))
    (job / "voices.json").write_text("{}")
    assert_one_line_error(bolly("voices", "learn", job, "--bank", "bank.json", cwd=tmp_path),
                          2, "bank.json: not a voice bank")
    assert (tmp_path / "bank.json").read_text() == "{not json"  # left as it was
    job_file = tmp_path / "job.json"  # a job that brings it is refused before anything runs
    job_file.write_text(json.dumps({"id": "bad", "media": "film.wav", "out_root": "out",
                                    "artifacts": {"voice_bank": "bank.json"}}))
    (tmp_path / "film.wav").write_bytes(b"")
    assert_one_line_error(bolly("run", job_file, cwd=tmp_path), 2,
                          "artifacts.voice_bank", "not a voice bank")
    assert not (tmp_path / "out").exists()
