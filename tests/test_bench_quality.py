"""bench/bench_quality.py reads a Vistaar/IndicVoices-style dataset manifest and scores it.

The manifest is built from voxint's real LibriSpeech clips (installed by scripts/test), so
the dataset path is exercised end to end: the pipeline and the bare library on every
utterance, WER per utterance and pooled. The scoring itself is checked on known pairs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import bench_quality
from bench.recordings import dataset_recordings, librispeech_clips
from bench.scoring import TimedWord, both_rates, boundary_errors
from bolly_ray.stages.support.packaged_models import packaged_model


def test_scores_count_words_as_asr_benchmarks_do() -> None:
    plain, normalised = both_rates("NUMBER TEN FRESH NELLY IS WAITING",
                                   "Number 10, fresh Nellie is waiting.", "en")
    assert (plain.errors, plain.words) == (2, 6)  # "10" and "Nellie"
    assert (normalised.errors, normalised.words) == (1, 6)  # numbers normalised; Nellie not
    hindi, _ = both_rates("मैं घर जा रहा हूँ", "मैं घर जा रहा हूँ।", "hi")
    assert hindi.errors == 0  # the danda is punctuation
    _, hindi_normalised = both_rates("क़िस्मत", "किस्मत", "hi")
    assert hindi_normalised.errors == 0  # nukta normalised, as Indic benchmarks do
    words = [TimedWord("hello", 1.1, 1.4), TimedWord("there", 1.5, 1.9),
             TimedWord("well-known", 3.0, 3.5), TimedWord("bye", 5.0, 5.3)]
    errors = boundary_errors([("Hello there", 1.0, 2.0), ("Goodbye", 4.9, 5.4)], words)
    starts, ends = errors  # a misheard word (bye) still marks the edge
    assert [round(e, 2) for e in starts] == [0.1, 0.1] and [round(e, 2) for e in ends] == [0.1, 0.1]
    assert boundary_errors([("Hello there", 1.0, 2.0)], []) == ([], [])


def manifest(folder: Path, clips: list) -> Path:
    audio = folder / "audio"
    audio.mkdir(parents=True)
    lines = []
    for clip in clips:
        shutil.copy(clip.audio, audio / clip.audio.name)
        lines.append(json.dumps({"audio_filepath": f"audio/{clip.audio.name}",
                                 "text": clip.reference.lower(), "duration": 5.0}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not librispeech_clips() or packaged_model("tiny.en") is None,
                    reason="needs voxint's clips (scripts/test) and the tiny.en model")
def test_a_dataset_manifest_is_scored_per_utterance_and_pooled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clips = librispeech_clips()[:2]
    dataset = manifest(tmp_path / "vistaar-like", clips)
    report = tmp_path / "report.json"
    code = bench_quality.main(["--dataset", str(dataset), "--language", "en", "--no-packaged",
                               "--model", "tiny.en", "--json", str(report), "--check"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    rows = json.loads(report.read_text())["tiny.en"]
    assert [r["recording"] for r in rows] == [f"vistaar-like/{n}_{c.audio.stem}"
                                              for n, c in enumerate(clips, 1)]
    for row in rows:
        assert row["pipeline"]["words"] == len(row["reference"].split())
        assert row["pipeline"]["normalised_wer"] <= 0.2, row
    assert "| vistaar-like (all 2) |" in printed


def test_a_broken_manifest_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"audio_filepath": "a.wav"}\n')
    with pytest.raises(SystemExit, match=r"manifest.jsonl: line 1: expected a JSON object with "
                                         r"audio_filepath and text"):
        dataset_recordings(tmp_path, "hi")
    (tmp_path / "manifest.jsonl").write_text('{"audio_filepath": "a.wav", "text": "x"}\n')
    with pytest.raises(SystemExit, match=r"line 1: no audio file .*a\.wav"):
        dataset_recordings(tmp_path, "hi")


def test_a_setting_is_json_or_text_and_a_malformed_one_is_named() -> None:
    assert bench_quality.setting("vad.speech_pad_ms=600") == ("vad.speech_pad_ms", 600)
    assert bench_quality.setting("asr.language=mixed") == ("asr.language", "mixed")
    with pytest.raises(SystemExit, match=r"--set 'asr': expected STAGE.KEY=VALUE"):
        bench_quality.setting("asr")


def test_dialogue_dashes_and_lyric_marks_are_not_words(tmp_path: Path) -> None:
    srt = tmp_path / "cues.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:03,000\n- Hello?\n- Hi, Raj.\n\n"
                   "2\n00:00:04,000 --> 00:00:06,000\n♪ Tujhe dekha ♪\n")
    words = bench_quality.cue_words(srt)
    assert [w.text for w in words] == ["Hello?", "Hi,", "Raj.", "Tujhe", "dekha"]
    assert (words[0].start, words[2].end, words[3].start, words[4].end) == (1.0, 3.0, 4.0, 6.0)
