"""`prepare` + `run --only demux` on every generated media file, through the real CLI.

Each file either yields a 16 kHz mono WAV as long as its audio (within one video frame,
late starts included) or is refused with exit code 1 or 2 and one line naming the file and
the problem, with nothing half-written in the job folder.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, bolly, read_manifest
from tests.media.make_media import MEDIA, MediaCase

FRAME_S = 1 / 25


def prepared(case: MediaCase, tmp_path: Path, *extra: str) -> Path:
    job_file = tmp_path / "job.json"
    done = bolly("prepare", case.path, "-o", job_file, "--id", "film",
                 "--out-root", tmp_path / "out", *extra, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return job_file


def job_dir_of(job_file: Path) -> Path:
    data = json.loads(job_file.read_text())
    year, month, day = data["created"].split("-")
    return Path(data["out_root"]) / year / month / day / data["user"] / data["id"]


@pytest.mark.parametrize("key", MEDIA)
def test_demux_every_media_file(key: str, media: dict[str, MediaCase], tmp_path: Path) -> None:
    case = media[key]
    if case.expect != "ok":
        done = bolly("prepare", case.path, "-o", tmp_path / "job.json", cwd=tmp_path)
        problem = "has no audio stream" if case.expect == "no_audio" else "cannot read media"
        assert_one_line_error(done, 2, str(case.path), problem)
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "job.json").exists()
        return
    job_file = prepared(case, tmp_path)
    done = bolly("run", job_file, "--only", "demux", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_dir = job_dir_of(job_file)
    wav_path = job_dir / read_manifest(job_dir)["stages"]["demux"]["outputs"]["audio"]["path"]
    with wave.open(str(wav_path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        seconds = wav.getnframes() / 16000
    assert abs(seconds - case.audio_duration) <= FRAME_S, (seconds, case.audio_duration)


@pytest.mark.parametrize("key", ["no_audio", "truncated"])
def test_a_job_for_unprocessable_media_fails_cleanly(key: str, media: dict[str, MediaCase],
                                                     tmp_path: Path) -> None:
    case = media[key]
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps({"id": "film", "media": str(case.path)}))
    done = bolly("run", job_file, "--only", "demux", cwd=tmp_path)
    assert_one_line_error(done, 1, "job film failed at demux", str(case.path),
                          "resume with: bolly-ray run")
    [folder] = (tmp_path / "out").glob("*/*/*/*/film")
    manifest = read_manifest(folder)
    assert manifest["status"] == "failed"
    assert manifest["stages"]["demux"]["status"] == "failed"
    assert manifest["stages"]["demux"]["outputs"] == {}
    assert not list(folder.glob("01_demux*")) and not (folder / ".scratch").exists()


def test_audio_track_chosen_by_language(media: dict[str, MediaCase], tmp_path: Path) -> None:
    case = media["mkv_two_audio"]
    outputs = {}
    for choice in ("demux.audio_language=eng", "demux.audio_stream=1", "demux.audio_stream=0"):
        job_file = prepared(case, tmp_path, "--set", choice, "--id", choice.replace("=", "-"))
        assert bolly("run", job_file, "--only", "demux", cwd=tmp_path).returncode == 0
        info = json.loads(next(job_dir_of(job_file).glob("01_demux/media.json")).read_text())
        outputs[choice] = info["chosen_audio"]
    assert outputs["demux.audio_language=eng"]["order"] == 1
    assert outputs["demux.audio_language=eng"]["language"] == "eng"
    assert outputs["demux.audio_stream=1"]["order"] == 1
    assert outputs["demux.audio_stream=0"]["language"] == "hin"


def test_english_source_language_picks_the_english_track(media: dict[str, MediaCase],
                                                         tmp_path: Path) -> None:
    job_file = prepared(media["mkv_two_audio"], tmp_path, "--source-language", "en")
    assert bolly("run", job_file, "--only", "demux", cwd=tmp_path).returncode == 0
    info = json.loads(next(job_dir_of(job_file).glob("01_demux/media.json")).read_text())
    assert info["chosen_audio"]["language"] == "eng"


def test_asking_for_a_missing_track_names_the_tracks(media: dict[str, MediaCase],
                                                     tmp_path: Path) -> None:
    job_file = prepared(media["mkv_two_audio"], tmp_path, "--set", "demux.audio_language=ta")
    done = bolly("run", job_file, "--only", "demux", cwd=tmp_path)
    assert_one_line_error(done, 1, "no audio stream in 'ta' (streams: hin, eng)")
