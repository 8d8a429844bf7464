"""vad and asr with real models that ship on PyPI: Silero VAD (ONNX, inside faster-whisper)
and Whisper tiny.en (CTranslate2), on speech whose words and timings are known exactly."""

from __future__ import annotations

import json
import time
import wave
from pathlib import Path

import jiwer
import pysubs2
import pytest

from bolly_ray.core.job import validate_job
from bolly_ray.core.wire import Selection
from bolly_ray.engine.registry import default_registry
from bolly_ray.executors import LocalExecutor
from bolly_ray.ops.demo import bundled_model
from bolly_ray.ops.synth import make_speech_wav
from tests.conftest import assert_one_line_error, bolly, read_manifest, stage_output, words_of

SENTENCES = ["The train to Mumbai leaves at nine.", "Please open the window.",
             "We will meet tomorrow morning."]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("speech")
    wav = folder / "speech.wav"
    spans = make_speech_wav(wav, SENTENCES, gap_s=2.0, lead_s=1.0, tail_s=1.0)
    return wav, spans


def run_stages(tmp_path: Path, wav: Path, only: str, artifacts: dict | None = None,
               **settings: dict) -> dict:
    registry = default_registry()
    job = validate_job({"id": "speech", "media": str(wav), "source_language": "en",
                        "out_root": str(tmp_path / "out"), "artifacts": artifacts or {},
                        "stages": {"asr": {"model": str(bundled_model()), "beam_size": 1},
                                   **settings}}, registry.specs, "test")
    [outcome] = LocalExecutor(registry).run([job], Selection(only=tuple(only.split(","))))
    assert outcome.status == "succeeded", outcome.error
    return read_manifest(outcome.job_dir) | {"dir": outcome.job_dir}


def test_vad_finds_each_sentence_and_nothing_in_the_gaps(speech: tuple[Path, list],
                                                         tmp_path: Path) -> None:
    wav, spans = speech
    tight = {"min_silence_ms": 500, "speech_pad_ms": 200}  # a 2 s pause ends a region
    manifest = run_stages(tmp_path / "tight", wav, "demux,vad", vad=tight)
    regions = stage_output(manifest, "vad", "speech")["segments"]
    assert len(regions) == len(spans)
    for region, (start, end, _) in zip(regions, spans, strict=True):
        assert abs(region["start"] - start) <= 0.3 and abs(region["end"] - end) <= 0.3
    # the defaults (faster-whisper's) keep pauses under 2 s inside a region, padded 0.4 s
    manifest = run_stages(tmp_path / "defaults", wav, "demux,vad")
    [region] = stage_output(manifest, "vad", "speech")["segments"]
    assert spans[0][0] - 0.5 <= region["start"] <= spans[0][0] - 0.3
    assert region["end"] >= spans[-1][1] + 0.3  # here the file's end


def test_vad_on_silence_finds_no_speech(tmp_path: Path) -> None:
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(2 * 16000 * 5))
    manifest = run_stages(tmp_path, silent, "demux,vad")
    assert stage_output(manifest, "vad", "speech")["segments"] == []


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
def test_asr_transcribes_in_the_source_language_with_word_timings(
        speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, spans = speech
    manifest = run_stages(tmp_path, wav, "demux,vad,asr")
    transcript = stage_output(manifest, "asr", "raw_transcript")
    assert transcript["language"] == "en"
    heard = words_of(" ".join(s["text"] for s in transcript["segments"]))
    expected = words_of(" ".join(SENTENCES))
    assert sum(w in heard for w in expected) / len(expected) >= 0.8, heard
    for segment in transcript["segments"]:
        assert segment["words"] and segment["avg_logprob"] is not None
        times = [(w["start"], w["end"]) for w in segment["words"]]
        assert times == sorted(times) and all(s <= e for s, e in times)
        assert any(s - 0.5 <= segment["start"] and segment["end"] <= e + 0.5
                   for s, e, _ in spans)  # every segment lies within spoken audio
    record = manifest["stages"]["asr"]
    assert record["metrics"]["model_loads"] == 1 and record["metrics"]["rtfx"] > 0


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
def test_the_vad_regions_are_what_asr_transcribes(speech: tuple[Path, list],
                                                  tmp_path: Path) -> None:
    wav, spans = speech
    start, end, _ = spans[0]  # hand ASR only the first sentence's region
    only_first = tmp_path / "speech.json"
    only_first.write_text(json.dumps({"segments": [{"start": start - 0.2, "end": end + 0.2}]}))
    manifest = run_stages(tmp_path, wav, "demux,asr", artifacts={"speech": str(only_first)})
    heard = words_of(" ".join(s["text"] for s in stage_output(manifest, "asr", "raw_transcript")
                              ["segments"]))
    assert "mumbai" in heard and "window" not in heard and "tomorrow" not in heard


def test_a_model_folder_that_does_not_exist_is_a_usage_error(speech: tuple[Path, list],
                                                       tmp_path: Path) -> None:
    wav, _ = speech
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "offline", "media": str(wav),
                                    "source_language": "en"}))
    done = bolly("run", job_file, "--only", "demux,vad,asr", "--set", "asr.model=./nowhere",
                 cwd=tmp_path)
    assert_one_line_error(done, 2, "job offline: asr.model=./nowhere: no such model folder")


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
def test_asr_is_reproducible_run_to_run(speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    first = run_stages(tmp_path / "a", wav, "demux,vad,asr")
    second = run_stages(tmp_path / "b", wav, "demux,vad,asr")
    assert (stage_output(first, "asr", "raw_transcript")
            == stage_output(second, "asr", "raw_transcript"))


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
def test_word_error_rate_and_every_word_inside_its_cue(speech: tuple[Path, list],
                                                       tmp_path: Path) -> None:
    wav, _ = speech
    manifest = run_stages(tmp_path, wav, "demux,vad,glossary,asr,align,speakers,filter,ner,lyrics,"
                                         "subtitles")
    transcript = stage_output(manifest, "asr", "raw_transcript")
    hypothesis = " ".join(words_of(" ".join(s["text"] for s in transcript["segments"])))
    reference = " ".join(words_of(" ".join(SENTENCES)))
    assert jiwer.wer(reference, hypothesis) <= 0.10, hypothesis
    folder = manifest["dir"] / manifest["stages"]["subtitles"]["outputs"]["subtitles"]["path"]
    cues = [(e.start / 1000, e.end / 1000, words_of(e.plaintext))
            for e in pysubs2.load(str(folder / "speech.en.srt"))]
    for segment in transcript["segments"]:
        for word in segment["words"]:
            inside = [c for c in cues if c[0] - 0.01 <= word["start"]
                      and word["end"] <= c[1] + 0.01]
            assert any(words_of(word["text"])[0] in c[2] for c in inside), word


def test_models_missing_offline_are_listed_before_anything_runs(
        speech: tuple[Path, list], tmp_path: Path) -> None:
    wav, _ = speech
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "preflight", "media": str(wav),
                                    "out_root": str(tmp_path / "out"),
                                    "stages": {"asr": {"model": "large-v3"}}}))
    started = time.monotonic()
    done = bolly("run", job_file, cwd=tmp_path)
    assert_one_line_error(done, 1, "missing models:", "asr: Whisper model 'large-v3' is not in "
                          "the local model cache: run `bolly-ray models pull large-v3`")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    pulled = bolly("models", "pull", "large-v3", cwd=tmp_path)
    assert_one_line_error(pulled, 1, "cannot fetch Whisper model 'large-v3'")


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
def test_a_warm_model_that_sampled_gives_the_next_job_the_fresh_models_transcript(
        speech: tuple[Path, list]) -> None:
    """What is reproducible: with the seed set per job, a job's transcript is the same on a
    fresh and on a warm model, fallback sampling included (here every window samples at
    temperature 1). What is not: the same seed on a model whose decoding thread sampled
    before, which is why the backend reloads such a model (CTranslate2 never reseeds it)."""
    import numpy as np

    from bolly_ray.stages.asr import AsrSettings, load_whisper
    from bolly_ray.stages.support.audio import SAMPLE_RATE

    with wave.open(str(speech[0])) as wav:
        audio = np.frombuffer(wav.readframes(wav.getnframes()), np.int16) / 32768.0
    settings = AsrSettings(model="tiny.en", temperatures=[1.0], beam_size=1, cpu_threads=1)

    def job(backend: object) -> list[tuple[float, float, str]]:
        backend.seed(settings.seed)  # type: ignore[attr-defined]
        segments, _ = backend.transcribe(  # type: ignore[attr-defined]
            audio.astype(np.float32), None, "en", settings, 1)
        return [(s.start, s.end, s.text) for s in segments]

    warm = load_whisper(settings)
    first = job(warm)
    assert warm.sampled and first, "the fallback never sampled: the test proves nothing"
    assert len(audio) / SAMPLE_RATE > 5
    assert job(warm) == first == job(load_whisper(settings))
