"""The Bollywood-quality stages on transcripts and audio whose truth is known: the
hallucination filter, the glossary, cast-aware name correction and song detection."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.formats.transcript import Segment, Transcript
from tests.conftest import read_manifest, segment, stage_output
from tests.tmdb_server import API_KEY, MOVIE_ID, READ_TOKEN, FakeTmdb, tmdb_server


def run_stage(root: Path, stage: str, artifacts: dict[str, Path], settings: dict | None = None,
              **job: object) -> dict:
    registry = default_registry()
    media = artifacts.pop("media", None) or make_wav(root)
    job_data = {"id": "q", "media": str(media), "source_language": "en",
                "out_root": str(root / "out"), "stages": {stage: settings or {}},
                "artifacts": {k: str(v) for k, v in artifacts.items()}, **job}
    [outcome] = LocalExecutor(registry).run([validate_job(job_data, registry.specs, "t")],
                                            Selection(only=(stage,)))
    assert outcome.status == "succeeded", outcome.error
    return read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}


def make_wav(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    wav = root / "tiny.wav"
    if not wav.exists():
        make_speech_wav(wav, ["Hello."])
    return wav


def write_transcript(path: Path, segments: list[Segment]) -> Path:
    Transcript(language="en", segments=segments).write(path)
    return path


# -- hallucination filter ----------------------------------------------------------------

def test_loops_and_outros_over_silence_go_and_genuine_repetition_stays(tmp_path: Path) -> None:
    segments = [segment(1.0, 2.5, "Where were you last night?"),
                segment(3.0, 4.0, "No! No! No!"),
                segment(4.5, 6.0, "I told you, I was at home."),
                *[segment(7.0 + 2 * i, 8.5 + 2 * i, "I will always love you.")
                  for i in range(20)],
                segment(50.0, 52.0, "Thanks for watching!")]
    speech = {"segments": [{"start": 0.9, "end": 6.1}, {"start": 6.9, "end": 47.0}]}
    (tmp_path / "speech.json").write_text(json.dumps(speech))
    manifest = run_stage(tmp_path, "filter", {
        "speaker_transcript": write_transcript(tmp_path / "t.json", segments),
        "speech": tmp_path / "speech.json"})
    kept = [s["text"] for s in stage_output(manifest, "filter", "filtered_transcript")["segments"]]
    assert kept == ["Where were you last night?", "No! No! No!", "I told you, I was at home.",
                    "I will always love you."]
    removed = stage_output(manifest, "filter", "hallucinations")["removed"]
    reasons = [r["reason"] for r in removed]
    assert reasons[:19] == ["a loop: the same line 20 times in a row (first kept)"] * 19
    assert removed[-1]["text"] == "Thanks for watching!"
    assert reasons[-1] == "a credit/outro phrase where nobody speaks"
    assert len(removed) == 20


def test_a_phrase_looped_inside_a_segment_is_kept_once_and_flag_mode_removes_nothing(
        tmp_path: Path) -> None:
    looped = "Come back " * 8 + "please."
    segments = [segment(0.0, 9.0, looped.strip()), segment(9.5, 10.0, "Bye bye bye.")]
    transcript = write_transcript(tmp_path / "t.json", segments)
    dropped = run_stage(tmp_path / "drop", "filter", {"speaker_transcript": transcript})
    [first, second] = stage_output(dropped, "filter", "filtered_transcript")["segments"]
    assert first["text"] == "Come back please."
    assert [w["text"] for w in first["words"]] == ["Come", "back", "please."]
    assert second["text"] == "Bye bye bye."  # three short repeats are speech, not a loop
    flagged = run_stage(tmp_path / "flag", "filter", {"speaker_transcript": transcript},
                        {"mode": "flag"})
    assert stage_output(flagged, "filter", "filtered_transcript")["segments"][0]["text"] == \
        looped.strip()
    assert len(stage_output(flagged, "filter", "hallucinations")["removed"]) == 1


def test_doubtful_segments_by_the_recognisers_own_scores_are_removed(tmp_path: Path) -> None:
    segments = [segment(0.0, 2.0, "A real line.", avg_logprob=-0.2, no_speech_prob=0.1,
                        compression_ratio=1.2),
                segment(2.0, 4.0, "la la la la la la la la la la", compression_ratio=3.1),
                segment(4.0, 6.0, "mumbled", avg_logprob=-1.6, no_speech_prob=0.8)]
    manifest = run_stage(tmp_path, "filter", {
        "speaker_transcript": write_transcript(tmp_path / "t.json", segments)})
    kept = stage_output(manifest, "filter", "filtered_transcript")["segments"]
    assert [s["text"] for s in kept] == ["A real line."]
    reasons = [r["reason"] for r in stage_output(manifest, "filter", "hallucinations")["removed"]]
    assert reasons == ["compression ratio 3.10 (a loop)",
                       "no-speech probability 0.80 with log-probability -1.60"]


def test_two_people_saying_the_same_line_in_turn_is_dialogue(tmp_path: Path) -> None:
    segments = [segment(0.0, 1.0, "Hello."), segment(1.5, 2.5, "Hello."),
                segment(3.0, 4.0, "Who is this?")]
    manifest = run_stage(tmp_path, "filter", {
        "speaker_transcript": write_transcript(tmp_path / "t.json", segments)})
    kept = stage_output(manifest, "filter", "filtered_transcript")["segments"]
    assert [s["text"] for s in kept] == ["Hello.", "Hello.", "Who is this?"]


# -- tmdb, glossary, names ---------------------------------------------------------------

@pytest.fixture
def tmdb() -> Iterator[FakeTmdb]:
    with tmdb_server() as server:
        yield server


def film_named(root: Path, name: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    media = root / name
    make_speech_wav(media, ["Hello."])
    return media


def tmdb_settings(tmdb: FakeTmdb, root: Path, **extra: object) -> dict:
    return {"api_base": tmdb.url, "cache_dir": str(root / "tmdb-cache"), "backoff_s": 0.01,
            **extra}


def everything_under(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in folder.rglob("*") if p.is_file())


def test_tmdb_finds_the_film_from_its_file_name_and_caches_the_answers(
        tmdb: FakeTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", API_KEY)
    media = film_named(tmp_path, "Om.Shanti.Om.2007.1080p.BluRay.x264.wav")
    manifest = run_stage(tmp_path, "tmdb", {"media": media}, tmdb_settings(tmdb, tmp_path))
    film = stage_output(manifest, "tmdb", "film_metadata")
    assert (film["tmdb_id"], film["title"], film["year"]) == (MOVIE_ID, "Om Shanti Om", 2007)
    assert film["found_by"] == "search: 'Om Shanti Om' 2007"
    assert film["cast"][0] == {"name": "Shah Rukh Khan",
                               "character": "Om Prakash Makhija / Om Kapoor", "order": 0}
    assert {"name": "Farah Khan", "job": "Director"} in film["crew"]
    assert [r["path"] for r in tmdb.requests] == ["/3/search/movie", f"/3/movie/{MOVIE_ID}"]
    assert tmdb.requests[0]["query"]["year"] == "2007"
    again = run_stage(tmp_path / "again", "tmdb", {"media": media},
                      tmdb_settings(tmdb, tmp_path))
    assert again["stages"]["tmdb"]["metrics"]["requests"] == 0  # served from the disk cache
    assert len(tmdb.requests) == 2
    for job_dir in (manifest["dir"], again["dir"]):
        assert API_KEY not in everything_under(job_dir)
    assert API_KEY not in everything_under(tmp_path / "tmdb-cache")


def test_tmdb_waits_out_429_and_500_then_succeeds_with_a_read_token(
        tmdb: FakeTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_READ_TOKEN", READ_TOKEN)
    tmdb.failures = [429, 500]
    manifest = run_stage(tmp_path, "tmdb", {}, tmdb_settings(tmdb, tmp_path,
                                                             movie_id=MOVIE_ID))
    assert stage_output(manifest, "tmdb", "film_metadata")["found_by"] == "movie_id"
    assert manifest["stages"]["tmdb"]["metrics"]["requests"] == 3
    assert {r["authorization"] for r in tmdb.requests} == {f"Bearer {READ_TOKEN}"}
    assert all("api_key" not in r["query"] for r in tmdb.requests)


def test_without_credentials_or_reachable_tmdb_the_job_goes_on_and_says_why(
        tmdb: FakeTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = default_registry()
    transcript = write_transcript(tmp_path / "t.json", [segment(0.0, 2.0, "Hello Raj.")])

    def run(root: Path, api: str) -> dict:
        job = validate_job({"id": "n", "media": str(make_wav(root)), "out_root": str(root),
                            "artifacts": {"filtered_transcript": str(transcript)},
                            "stages": {"tmdb": {"api_base": api, "max_attempts": 2,
                                                "backoff_s": 0.01,
                                                "cache_dir": str(root / "c")}}},
                           registry.specs, "t")
        [outcome] = LocalExecutor(registry).run([job], Selection(only=("tmdb", "glossary",
                                                                       "ner")))
        assert outcome.status == "succeeded", outcome.error
        return read_manifest(outcome.job_dir)

    unkeyed = run(tmp_path / "nokey", tmdb.url)
    assert unkeyed["stages"]["tmdb"]["status"] == "skipped"
    assert unkeyed["stages"]["tmdb"]["error"] == (
        "tmdb: no TMDB_READ_TOKEN or TMDB_API_KEY in the environment (the film's cast cannot "
        "be looked up)")
    monkeypatch.setenv("TMDB_API_KEY", API_KEY)
    unreachable = run(tmp_path / "down", "http://127.0.0.1:9/3")  # nothing listens there
    record = unreachable["stages"]["tmdb"]
    assert record["status"] == "failed" and record["attempts"] == 1
    assert record["error"] == ("tmdb: TMDB unavailable after 2 attempts (ConnectionError)")
    assert unreachable["stages"]["ner"]["status"] == "succeeded"
    assert API_KEY not in everything_under(tmp_path / "down")


def test_misspelled_cast_names_get_the_tmdb_spelling_and_other_names_stay(
        tmdb: FakeTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", API_KEY)
    transcript = write_transcript(tmp_path / "t.json", [
        segment(0.0, 3.0, "Shahrukh Kahn is here with Deepika Padukon tonight."),
        segment(3.5, 5.0, "Pappu Mastar, call Rahul Dravid now."),
        segment(5.5, 7.0, "Om Kapur will sing for Mukesh.")])
    film_glossary = tmp_path / "film.tsv"
    film_glossary.write_text("term\tpreferred\talternatives\tnotes\n"
                             "Shantipriya\tShantipriya\tShanti Priya\theroine\n")
    registry = default_registry()
    job = validate_job({"id": "names", "media": str(make_wav(tmp_path)), "title": "Om Shanti Om",
                        "year": 2007, "out_root": str(tmp_path / "out"),
                        "artifacts": {"filtered_transcript": str(transcript),
                                      "film_glossary": str(film_glossary)},
                        "stages": {"tmdb": tmdb_settings(tmdb, tmp_path)}}, registry.specs, "t")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("tmdb", "glossary", "ner")))
    assert outcome.status == "succeeded", outcome.error
    manifest = read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}
    texts = [s["text"] for s in stage_output(manifest, "ner", "named_transcript")["segments"]]
    assert texts == ["Shah Rukh Khan is here with Deepika Padukone tonight.",
                     "Pappu Master, call Rahul Dravid now.",
                     "Om Kapoor will sing for Mukesh."]
    first = stage_output(manifest, "ner", "named_transcript")["segments"][0]
    assert [w["text"] for w in first["words"]][:3] == ["Shah", "Rukh", "Khan"]
    assert first["words"][0]["start"] == 0.0 and first["words"][2]["end"] <= first["words"][3][
        "start"] + 1e-6
    changes = stage_output(manifest, "ner", "name_corrections")["corrections"]
    assert [(c["found"], c["corrected"], c["source"]) for c in changes] == [
        ("Shahrukh Kahn", "Shah Rukh Khan", "cast"),
        ("Deepika Padukon", "Deepika Padukone", "cast"),
        ("Pappu Mastar", "Pappu Master", "character"),
        ("Om Kapur", "Om Kapoor", "character")]
    glossary = stage_output(manifest, "glossary", "glossary")["terms"]
    sources = {t["term"]: t["source"] for t in glossary}
    assert sources["Shantipriya"] == "film" and sources["yaar"] == "starter"
    assert sources["Om Kapoor"] == "character" and sources["Kirron Kher"] == "cast"
    assert API_KEY not in everything_under(outcome.job_dir)


def test_a_refused_key_fails_tmdb_at_once_with_the_status_and_not_the_key(
        tmdb: FakeTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", "not-the-right-key")
    manifest = run_stage(tmp_path, "tmdb", {}, tmdb_settings(tmdb, tmp_path, movie_id=MOVIE_ID))
    record = manifest["stages"]["tmdb"]
    assert (record["status"], record["attempts"]) == ("failed", 1)
    assert record["error"] == "tmdb: TMDB refused the credentials (HTTP 401)"
    assert len(tmdb.requests) == 1  # no retry can fix a refused key
    assert "not-the-right-key" not in everything_under(manifest["dir"])


def test_some_music_with_a_chorus_or_verse_lines_is_a_song_and_dialogue_is_not() -> None:
    from bolly_ray.stages.lyrics import LyricsSettings, song_spans

    settings = LyricsSettings()
    music = np.zeros(40, dtype=bool)
    music[0:20:2] = True  # 20 s where every other second sounds like music (half of it)
    verse = [segment(2.0 * i, 2.0 * i + 1.8, text) for i, text in enumerate(
        ["Tujhe dekha to yeh jaana sanam", "Pyaar hota hai deewana sanam",
         "Ab yahan se kahan jaayen hum", "Teri baahon mein mar jaayen hum"])]
    chatter = [segment(2.0 * i, 2.0 * i + 1.8, text) for i, text in enumerate(
        ["Where were you?", "I waited at the station for two hours and nobody came",
         "Sorry.", "The train was late again because of the rain"])]
    chorus = [segment(0.0, 2.0, "Dil to pagal hai"), segment(3.0, 9.0, "Pagal hai, pagal"),
              segment(10.0, 12.0, "Dil to pagal hai")]
    assert [s["evidence"] for s in song_spans(music, verse, settings)] == [
        "music in 53% of the stretch and 4 short lines of even length"]
    assert "1 repeated line(s)" in song_spans(music, chorus, settings)[0]["evidence"]
    assert song_spans(music, chatter, settings) == []
