"""`bolly-ray serve` for real: the service started as users start it, on a free port with an
embedded Ray, driven over HTTP the way Bazarr's Whisper provider drives it (raw PCM and
encoded uploads), by the jobs API, by a watch folder, and crashed mid-job."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import read_manifest, words_of
from tests.service_helpers import (
    DEMO_SETTINGS,
    Server,
    pcm_of,
    post_audio,
    running_server,
    start_server,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("library")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, library: Path) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("service") / "state"
    with running_server(state, "--executor", "ray", "--watch", library, *DEMO_SETTINGS) as up:
        yield up


def job_dirs(state: Path) -> list[Path]:
    return sorted(p.parent for p in (state / "jobs").rglob("manifest.json"))


def uploads(state: Path) -> list[Path]:
    folder = state / "uploads"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def manifest_of(server: Server, answer: requests.Response) -> dict:
    job = answer.headers["X-Bolly-Ray-Job"]
    return read_manifest(Path(requests.get(f"{server.url}/jobs/{job}", timeout=10
                                           ).json()["job_dir"]))


def test_asr_answers_the_demos_words_for_raw_pcm_and_for_an_encoded_file(
        server: Server, demo_run: dict[str, Path]) -> None:
    expected = words_of(demo_run["srt"].read_text())
    raw = post_audio(server.url + "/asr", pcm_of(demo_run["audio"]), task="transcribe",
                     language="en", output="srt", encode="false")
    assert raw.status_code == 200, raw.text
    assert raw.headers["X-Bolly-Ray-Served"] == "run"
    assert words_of(raw.text) == expected
    assert raw.text.startswith("1\n00:00:")
    encoded = post_audio(server.url + "/asr", demo_run["clip"].read_bytes(), task="transcribe",
                         language="en", output="vtt", encode="true")
    assert encoded.status_code == 200, encoded.text
    assert encoded.text.startswith("WEBVTT")
    assert words_of(encoded.text.removeprefix("WEBVTT")) == expected
    # the second request found Whisper loaded: the actors stay warm between requests
    loads = [manifest_of(server, answer)["stages"]["asr"]["metrics"]["model_loads"]
             for answer in (raw, encoded)]
    assert loads == [1, 0]


def test_a_repeated_request_is_answered_from_the_finished_job(
        server: Server, demo_run: dict[str, Path]) -> None:
    audio = pcm_of(demo_run["audio"], extra_silence_s=0.25)
    first = post_audio(server.url + "/asr", audio, language="en", output="srt", encode="false")
    assert first.status_code == 200, first.text
    job = first.headers["X-Bolly-Ray-Job"]
    job_dir = Path(requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["job_dir"])
    manifest = (job_dir / "manifest.json").read_bytes()
    started = time.monotonic()
    again = post_audio(server.url + "/asr", audio, language="en", output="srt", encode="false")
    took = time.monotonic() - started
    assert again.status_code == 200
    assert (again.headers["X-Bolly-Ray-Job"], again.headers["X-Bolly-Ray-Served"]) == (
        job, "cached")
    assert again.text == first.text
    assert (job_dir / "manifest.json").read_bytes() == manifest  # no stage ran again
    assert took < 2.0, took
    row = requests.get(f"{server.url}/jobs/{job}", timeout=10).json()
    assert (row["runs"], row["joined"]) == (1, 1)
    # another output format of the same job is rendered from it, not run again
    as_json = post_audio(server.url + "/asr", audio, language="en", output="json",
                         encode="false")
    assert as_json.headers["X-Bolly-Ray-Served"] == "cached"
    segments = as_json.json()["segments"]
    assert words_of(" ".join(s["text"] for s in segments)) == words_of(first.text)


def test_two_identical_requests_at_once_run_once(server: Server, demo_run: dict[str, Path]
                                                 ) -> None:
    audio = pcm_of(demo_run["audio"], extra_silence_s=0.5)
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(post_audio(
        server.url + "/asr", audio, language="en", output="srt", encode="false")))
        for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].text == answers[1].text
    assert sorted(a.headers["X-Bolly-Ray-Served"] for a in answers) == ["joined", "run"]
    job = answers[0].headers["X-Bolly-Ray-Job"]
    assert answers[1].headers["X-Bolly-Ray-Job"] == job
    row = requests.get(f"{server.url}/jobs/{job}", timeout=10).json()
    assert row["runs"] == 1
    manifest = read_manifest(Path(row["job_dir"]))
    assert manifest["stages"]["asr"]["attempts"] == 1


@pytest.mark.parametrize(("params", "body", "status", "message"), [
    ({"encode": "false"}, b"", 400, "audio_file is empty"),
    ({"encode": "false"}, b"\x01\x02\x03", 400, "not a whole number of samples"),
    ({"encode": "true"}, b"plain text, not a film", 400, "not audio ffmpeg can read"),
    ({"encode": "false", "language": "xx"}, b"\0\0" * 16000, 400, "unknown language 'xx'"),
    ({"encode": "false", "output": "docx"}, b"\0\0" * 16000, 400, "unknown output 'docx'"),
    ({"encode": "false", "task": "sing"}, b"\0\0" * 16000, 400, "unknown task 'sing'"),
])
def test_bad_audio_requests_get_a_4xx_with_one_line_and_leave_nothing(
        server: Server, params: dict[str, str], body: bytes, status: int, message: str) -> None:
    before = requests.get(server.url + "/jobs", timeout=10).json()["counts"]
    kept = (job_dirs(server.state), uploads(server.state))
    answer = post_audio(server.url + "/asr", body, **params)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert message in error and "\n" not in error
    assert requests.get(server.url + "/jobs", timeout=10).json()["counts"] == before
    assert (job_dirs(server.state), uploads(server.state)) == kept


def test_requests_without_the_form_file_or_outside_the_roots_are_refused(
        server: Server, tmp_path: Path, demo_run: dict[str, Path]) -> None:
    missing = requests.post(server.url + "/asr", data={"other": "x"}, timeout=10)
    assert missing.status_code == 400
    assert "audio_file is missing" in missing.json()["error"]
    outside = tmp_path / "elsewhere.mp4"
    shutil.copyfile(demo_run["clip"], outside)
    refused = requests.post(server.url + "/jobs", json={"path": str(outside)}, timeout=10)
    assert refused.status_code == 403
    assert "not under an allowed root" in refused.json()["error"]
    unknown = requests.post(server.url + "/jobs", json={"path": "x", "colour": "red"},
                            timeout=10)
    assert unknown.status_code == 422
    assert "colour" in unknown.json()["error"]


def test_a_new_film_in_the_watch_folder_gets_subtitles_beside_it(
        server: Server, library: Path, demo_run: dict[str, Path]) -> None:
    film = library / "Dilwale (1995)" / "Dilwale (1995).mp4"
    film.parent.mkdir()
    partial = film.with_name(".copying")
    shutil.copyfile(demo_run["clip"], partial)
    partial.replace(film)
    subtitles = film.with_name("Dilwale (1995).en.srt")
    deadline = time.monotonic() + 300
    while not subtitles.exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert subtitles.exists(), server.log_text()[-3000:]
    assert words_of(subtitles.read_text()) == words_of(demo_run["srt"].read_text())
    assert sorted(p.name for p in film.parent.iterdir() if not p.name.startswith(".")) == [
        "Dilwale (1995).en.srt", "Dilwale (1995).mp4"]


def test_a_restart_mid_job_loses_nothing(tmp_path: Path, demo_run: dict[str, Path]) -> None:
    films = tmp_path / "films"
    films.mkdir()
    film = films / "film.mp4"
    shutil.copyfile(demo_run["clip"], film)
    state = tmp_path / "state"
    first = start_server(state, "--executor", "ray", "--root", films, *DEMO_SETTINGS)
    try:
        submitted = requests.post(first.url + "/jobs", json={"path": str(film)}, timeout=10)
        assert submitted.status_code == 202, submitted.text
        job = submitted.json()["id"]
        job_dir = Path(submitted.json()["job_dir"])
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stages = (read_manifest(job_dir)["stages"] if (job_dir / "manifest.json").exists()
                      else {})
            if stages.get("asr", {}).get("status") == "succeeded":
                break
            time.sleep(0.1)
        else:
            raise AssertionError(first.log_text()[-3000:])
    finally:
        first.crash()
    before = read_manifest(job_dir)
    assert before["status"] == "running"
    with running_server(state, "--executor", "ray", "--root", films, *DEMO_SETTINGS) as second:
        row = requests.get(f"{second.url}/jobs/{job}", timeout=10).json()
        assert row["status"] in ("queued", "running", "succeeded")
        deadline = time.monotonic() + 300
        while row["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            row = requests.get(f"{second.url}/jobs/{job}", timeout=10).json()
        assert row["status"] == "succeeded", second.log_text()[-3000:]
        assert row["runs"] == 2
    after = read_manifest(job_dir)
    for stage in ("demux", "asr"):  # done before the crash: not run again
        assert after["stages"][stage]["started_at"] == before["stages"][stage]["started_at"]
    srt = next((job_dir / "subtitles").glob("*.en.srt"))
    assert words_of(srt.read_text()) == words_of(demo_run["srt"].read_text())


def test_language_detection_with_an_english_only_model_is_refused_with_the_reason(
        server: Server, demo_run: dict[str, Path]) -> None:
    answer = post_audio(server.url + "/detect-language", pcm_of(demo_run["audio"]),
                        encode="false")
    assert answer.status_code == 422, answer.text
    assert "multilingual" in answer.json()["error"]


def test_a_finished_job_whose_folder_was_removed_runs_again(server: Server,
                                                            demo_run: dict[str, Path]) -> None:
    audio = pcm_of(demo_run["audio"], extra_silence_s=0.75)
    first = post_audio(server.url + "/asr", audio, language="en", output="srt", encode="false")
    assert first.status_code == 200, first.text
    job = first.headers["X-Bolly-Ray-Job"]
    shutil.rmtree(requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["job_dir"])
    again = post_audio(server.url + "/asr", audio, language="en", output="srt", encode="false")
    assert again.status_code == 200, again.text
    assert (again.headers["X-Bolly-Ray-Job"], again.headers["X-Bolly-Ray-Served"]) == (job, "run")
    assert again.text == first.text
    assert requests.get(f"{server.url}/jobs/{job}", timeout=10).json()["runs"] == 2
