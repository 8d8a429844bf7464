"""Tests for the deterministic test-media generator in tests/media/make_media.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.media.make_media import (
    LATE_AUDIO_OFFSET_S,
    MEDIA,
    MediaCase,
    build_all,
    make_speech_wav,
    sha256_file,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(t) is None for t in ("ffmpeg", "ffprobe", "espeak-ng")),
        reason="needs ffmpeg, ffprobe and espeak-ng",
    ),
]

HOSTILE_PARTS = (" ", "'", '"', "$(touch PWNED)", "`", "नमस्ते", "café")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, MediaCase]]:
    out = tmp_path_factory.mktemp("media-a")
    return out, build_all(out)


def _probe(path: Path) -> subprocess.CompletedProcess[str]:
    cmd = ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json",
           f"file:{path}"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def _streams(path: Path, kind: str) -> list[dict[str, Any]]:
    proc = _probe(path)
    assert proc.returncode == 0, proc.stderr
    return [s for s in json.loads(proc.stdout)["streams"] if s["codec_type"] == kind]


def test_every_case_is_built(built: tuple[Path, dict[str, MediaCase]]) -> None:
    out, cases = built
    assert tuple(cases) == MEDIA
    for key, case in cases.items():
        assert case.key == key
        assert case.path.parent == out
        assert case.path.is_file() and case.path.stat().st_size > 0
    assert (out / "cases.json").is_file()


def test_ok_cases_have_expected_streams(built: tuple[Path, dict[str, MediaCase]]) -> None:
    for case in built[1].values():
        if case.expect != "ok":
            continue
        audio = _streams(case.path, "audio")
        langs = tuple(s.get("tags", {}).get("language", "und") for s in audio)
        assert langs == case.audio_languages, case.key
        assert bool(_streams(case.path, "video")) == case.has_video, case.key
        assert case.audio_duration is not None and 4.0 < case.audio_duration < 10.0, case.key
        assert case.spoken_text


def test_two_audio_titles(built: tuple[Path, dict[str, MediaCase]]) -> None:
    audio = _streams(built[1]["mkv_two_audio"].path, "audio")
    assert [s["tags"]["title"] for s in audio] == ["Hindi", "English"]


def test_late_audio_starts_late(built: tuple[Path, dict[str, MediaCase]]) -> None:
    case = built[1]["late_audio"]
    assert case.audio_start == pytest.approx(LATE_AUDIO_OFFSET_S, abs=0.02)
    assert case.audio_duration is not None
    on_time = built[1]["mkv_two_audio"].audio_duration
    assert case.audio_duration - on_time == pytest.approx(LATE_AUDIO_OFFSET_S, abs=0.02)


def test_no_audio_has_no_audio_stream(built: tuple[Path, dict[str, MediaCase]]) -> None:
    case = built[1]["no_audio"]
    assert case.expect == "no_audio" and case.audio_duration is None
    assert _streams(case.path, "audio") == []
    assert len(_streams(case.path, "video")) == 1


def test_truncated_is_unreadable(built: tuple[Path, dict[str, MediaCase]]) -> None:
    case = built[1]["truncated"]
    assert case.expect == "corrupt"
    proc = _probe(case.path)
    assert proc.returncode != 0 or not json.loads(proc.stdout).get("streams")


def test_hostile_name_is_hostile_and_harmless(built: tuple[Path, dict[str, MediaCase]]) -> None:
    out, cases = built
    name = cases["hostile_name"].path.name
    assert name.startswith("-")
    for part in HOSTILE_PARTS:
        assert part in name
    assert "/" not in name and "\0" not in name
    assert not list(out.rglob("PWNED"))
    assert not (Path.cwd() / "PWNED").exists()


def test_wav_only_is_44k_stereo(built: tuple[Path, dict[str, MediaCase]]) -> None:
    with wave.open(str(built[1]["wav_only"].path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (44_100, 2)


def test_rebuild_is_identical_and_rerun_is_noop(
    built: tuple[Path, dict[str, MediaCase]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    out, cases = built
    other = build_all(tmp_path_factory.mktemp("media-b"))
    for key, case in cases.items():
        assert sha256_file(case.path) == sha256_file(other[key].path), key
        assert case.audio_duration == other[key].audio_duration, key
    mtimes = {k: c.path.stat().st_mtime_ns for k, c in cases.items()}
    assert build_all(out) == cases
    assert {k: c.path.stat().st_mtime_ns for k, c in cases.items()} == mtimes


def test_speech_wav_spans(tmp_path: Path) -> None:
    sentences = ["Raj and Simran meet in Punjab.", "The train leaves at nine."]
    wav_path = tmp_path / "speech.wav"
    spans = make_speech_wav(wav_path, sentences, gap_s=0.5)
    assert [text for _, _, text in spans] == sentences
    (s0, e0, _), (s1, e1, _) = spans
    assert s0 == 0.0 and 0.5 < e0 - s0 < 5.0
    assert s1 - e0 == pytest.approx(0.5)
    with wave.open(str(wav_path), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16_000, 1, 2)
        assert wav.getnframes() / 16_000 == pytest.approx(e1)
