"""Hostile and odd input through the real CLI: job files that try to escape, break names or
smuggle bytes; media that lies, overflows or holds nothing. Each gets a clear one-line error
and leaves nothing behind, or a correct empty result (silence and noise: no subtitles)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pysubs2
import pytest

from bolly_ray.ops.demo import bundled_model
from tests.conftest import assert_one_line_error, bolly, read_manifest
from tests.media import hostile

BAD_JOBS = {
    "dot-dot id": ({"id": "../escape"}, "id: '../escape' is not a usable name"),
    "dot-dot user": ({"user": ".."}, "user: '..' is not a usable name"),
    "leading dash": ({"id": "-rf"}, "id: '-rf' is not a usable name"),
    "slash in name": ({"name": "a/b"}, "name: 'a/b' is not a usable name"),
    "NUL in media": ({"media": "film\u0000.mkv"}, "media: 'film\\x00.mkv': control characters"),
    "newline in out_root": ({"out_root": "out\nroot"}, "out_root: 'out\\nroot': control"),
    "NUL in an artifact": ({"artifacts": {"transcript": "t\u0000.json"}},
                           "artifacts.transcript: 't\\x00.json': control characters"),
    "unknown key": ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    "wrong type": ({"year": "nineteen"}, "year: Input should be a valid integer"),
    "wrong stage type": ({"stages": {"asr": {"beam_size": "wide"}}},
                         "stages.asr.beam_size: Input should be a valid integer"),
}


def write_job(folder: Path, **fields: object) -> Path:
    job_file = folder / "job.json"
    job_file.write_text(json.dumps({"id": "film", "media": "film.mkv", "out_root": "out",
                                    **fields}))
    return job_file


@pytest.mark.parametrize("case", BAD_JOBS)
def test_a_hostile_job_file_exits_2_naming_the_field(case: str, tmp_path: Path) -> None:
    fields, message = BAD_JOBS[case]
    done = bolly("run", write_job(tmp_path, **fields), cwd=tmp_path)
    assert_one_line_error(done, 2, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]


def test_paths_outside_the_allowed_roots_are_refused(tmp_path: Path) -> None:
    allowed, elsewhere = tmp_path / "allowed", tmp_path / "elsewhere"
    allowed.mkdir()
    elsewhere.mkdir()
    (elsewhere / "t.json").write_text("{}")
    (allowed / "link.json").symlink_to(elsewhere / "t.json")
    job_file = write_job(allowed, media="/etc/hostname", out_root="../elsewhere/out",
                         artifacts={"transcript": "link.json"})
    done = bolly("run", job_file, cwd=allowed,
                 env={"BOLLY_RAY_ALLOWED_ROOTS": f"{allowed}{os.pathsep}/nonexistent"})
    assert_one_line_error(done, 2, "media: /etc/hostname is outside the allowed roots",
                          f"out_root: {elsewhere}/out is outside the allowed roots",
                          f"artifacts.transcript: {elsewhere}/t.json is outside")
    assert not (elsewhere / "out").exists() and not (allowed / "out").exists()
    inside = write_job(allowed, media="film.mkv")
    done = bolly("run", inside, "--only", "demux", cwd=allowed,
                 env={"BOLLY_RAY_ALLOWED_ROOTS": str(allowed)})
    assert_one_line_error(done, 1, "film.mkv: No such file or directory")  # past the roots


CAPPED_MEDIA: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "not media": (hostile.not_media, "film.mkv", "Invalid data found when processing input"),
    "absurd duration": (hostile.absurd_duration, "film.mkv",
                        "duration 10000000 s is more than the 43200 s allowed"),
    "absurd resolution": (hostile.absurd_resolution, "film.mkv",
                          "a 16000x16000 video stream is more than the 67 megapixels allowed"),
    "999 streams": (hostile.many_streams, "film.mkv",
                    "999 streams is more than the 64 allowed"),
    "zero-length audio": (hostile.empty_audio, "film.wav",
                          "has no measurable duration (truncated or empty?)"),
}


def speech_job(folder: Path, media: str) -> Path:
    """A job for every speech stage, with the small Whisper model the demo extra ships."""
    return write_job(folder, media=media, source_language="en", target_languages=["en"],
                     stages={"asr": {"model": str(bundled_model()), "beam_size": 1}})


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
@pytest.mark.parametrize("case", CAPPED_MEDIA)
def test_media_outside_the_caps_fails_at_the_probe_before_any_work(case: str,
                                                                   tmp_path: Path) -> None:
    build, name, message = CAPPED_MEDIA[case]
    build(tmp_path / name)
    done = bolly("run", speech_job(tmp_path, name), cwd=tmp_path)
    assert_one_line_error(done, 1, "job film failed at demux: ", message)
    job_dir = next((tmp_path / "out").glob("*/*/*/*/film"))
    manifest = read_manifest(job_dir)
    assert manifest["stages"]["demux"]["status"] == "failed"
    assert message in manifest["stages"]["demux"]["error"]
    ran = {s for s, r in manifest["stages"].items() if r["status"] in ("succeeded", "running")}
    assert ran <= {"glossary"}  # reads no media; every media stage waited on the probe
    assert not [p for p in job_dir.iterdir() if p.name[:2].isdigit()]  # nothing published


def test_a_wav_header_that_lies_about_its_length_gives_the_real_length(tmp_path: Path) -> None:
    hostile.lying_wav_header(tmp_path / "film.wav")
    done = bolly("run", write_job(tmp_path, media="film.wav"), "--only", "demux", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(next((tmp_path / "out").glob("*/*/*/*/film")))
    assert manifest["stages"]["demux"]["metrics"]["audio_s"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.skipif(bundled_model() is None, reason="needs the demo extra's Whisper model")
@pytest.mark.parametrize("build", [hostile.silence, hostile.noise], ids=["silence", "noise"])
def test_silence_and_noise_give_empty_subtitles_not_hallucinated_text(
        build: Callable[[Path], Path], tmp_path: Path) -> None:
    build(tmp_path / "film.wav")
    done = bolly("run", speech_job(tmp_path, "film.wav"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_dir = next((tmp_path / "out").glob("*/*/*/*/film"))
    subtitles = job_dir / "subtitles"
    assert (subtitles / "film.en.srt").read_text() == ""
    assert len(pysubs2.load(str(subtitles / "film.en.ass"))) == 0
    raw = json.loads((job_dir / read_manifest(job_dir)["stages"]["asr"]["outputs"][
        "raw_transcript"]["path"]).read_text())
    assert raw["segments"] == []  # nothing was decoded, so nothing needed filtering
