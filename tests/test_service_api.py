"""The service's guards and its other doors: the bearer token (header and `/t/<token>/`),
the upload limit, Bazarr's connection test and language detection, the media-server
webhooks (Plex's API answered by a real local HTTP server), progress as server-sent events
and cancelling. One real `bolly-ray serve` with a token and the in-process executor."""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from bolly_ray.ops.demo import conversation_audio
from tests.conftest import assert_one_line_error, bolly, words_of
from tests.service_helpers import DEMO_SETTINGS, Server, pcm_of, post_audio, running_server

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"
PLEX_TOKEN = "plex-token-for-tests"
JELLYFIN_TOKEN = "jellyfin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class MediaServerApi(http.server.BaseHTTPRequestHandler):
    """The two calls the service makes, answered as Plex (`/library/metadata/<ratingKey>`)
    and Jellyfin (`/Items?ids=<id>&fields=Path`) answer them, trimmed to what is read."""

    files: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/library/metadata/"):
            token, key = self.headers.get("X-Plex-Token"), url.path.rsplit("/", 1)[-1]
            body = {"MediaContainer": {"size": 1, "Metadata": [{
                "ratingKey": key, "type": "movie",
                "Media": [{"id": 1, "Part": [{"id": 1, "file": self.files.get(key)}]}]}]}}
            expected = PLEX_TOKEN
        else:
            token = self.headers.get("X-Emby-Token")
            key = urllib.parse.parse_qs(url.query).get("ids", [""])[0]
            body = {"Items": [{"Id": key, "Type": "Movie", "Path": self.files.get(key)}],
                    "TotalRecordCount": 1}
            expected = JELLYFIN_TOKEN
        if token != expected or key not in self.files:
            self.send_error(401 if key in self.files else 404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def media_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MediaServerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("films")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, films: Path, media_server: str
           ) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("guarded") / "state"
    with running_server(state, "--executor", "local", "--root", films, "--max-upload-mb", "1",
                        "--plex-url", media_server, "--jellyfin-url", media_server,
                        "--path-map", f"/media/films={films}", "--set", "asr.model=base",
                        "--set", "asr.beam_size=1", "--source-language", "en",
                        env={"BOLLY_RAY_API_TOKEN": TOKEN, "PLEX_TOKEN": PLEX_TOKEN,
                             "JELLYFIN_TOKEN": JELLYFIN_TOKEN}) as up:
        yield up


def test_only_the_connection_test_is_open_without_the_token(server: Server) -> None:
    status = requests.get(server.url + "/status", timeout=10)
    assert status.status_code == 200
    assert status.json()["version"].startswith("bolly-ray ")
    for headers, path in (({}, "/jobs"), ({"Authorization": "Bearer wrong"}, "/jobs"),
                          ({}, "/t/wrong/jobs"), ({}, "/")):
        refused = requests.get(server.url + path, headers=headers, timeout=10)
        assert refused.status_code == 401, path
        assert "token" in refused.json()["error"]
    assert requests.get(server.url + "/jobs", headers=AUTH, timeout=10).status_code == 200
    assert requests.get(f"{server.url}/t/{TOKEN}/jobs", timeout=10).status_code == 200
    page = requests.get(f"{server.url}/t/{TOKEN}/", timeout=10)
    assert page.status_code == 200 and "<h1>bolly-ray</h1>" in page.text
    assert TOKEN not in server.log_text()


def test_an_upload_over_the_limit_is_refused_while_it_arrives(server: Server) -> None:
    before = requests.get(server.url + "/jobs", headers=AUTH, timeout=10).json()["counts"]
    declared = post_audio(f"{server.url}/t/{TOKEN}/asr", b"\0" * (1024 * 1024 + 2),
                          encode="false")
    assert declared.status_code == 413
    assert "larger than the 1 MB allowed" in declared.json()["error"]

    def chunks() -> Iterator[bytes]:  # a multipart body with no Content-Length: chunked
        yield (b'--b0undary\r\nContent-Disposition: form-data; name="audio_file"; '
               b'filename="audio_file"\r\n\r\n')
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--b0undary--\r\n"

    streamed = requests.post(f"{server.url}/t/{TOKEN}/asr?encode=false", data=chunks(),
                             headers={"Content-Type": "multipart/form-data; boundary=b0undary"},
                             timeout=30)
    assert streamed.status_code == 413
    assert requests.get(server.url + "/jobs", headers=AUTH, timeout=10).json()["counts"] == before
    assert not (server.state / "uploads").exists() or not any(
        p for p in (server.state / "uploads").iterdir() if not p.name.startswith("."))


def test_bazarr_detects_the_language_of_a_real_call_through_the_token_path(
        server: Server) -> None:
    call = conversation_audio()  # a real telephone call in English (pyannote.audio's sample)
    if call is None:
        pytest.skip("needs pyannote.audio's sample call (the ml extra)")
    answer = post_audio(f"{server.url}/t/{TOKEN}/detect-language", call.read_bytes(),
                        encode="true")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"detected_language": "english", "language_code": "en"}


def wait_for(path: Path, server: Server, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert path.exists(), server.log_text()[-3000:]


@pytest.mark.parametrize("source", ["emby", "jellyfin", "plex"])
def test_a_media_server_webhook_gets_subtitles_beside_the_film(
        server: Server, films: Path, demo_run: dict[str, Path], source: str) -> None:
    film = films / source / f"{source.title()} Film (2001).mp4"
    film.parent.mkdir()
    shutil.copyfile(demo_run["clip"], film)
    # the media server sees the films under /media/films (its container's mount)
    theirs = f"/media/films/{source}/{film.name}"
    if source == "emby":  # Emby posts multipart with the JSON in the field "data"
        sent = requests.post(server.url + "/webhooks/emby", headers=AUTH, timeout=30, data={
            "data": json.dumps({"Event": "library.new", "Item": {"Path": theirs}})})
    elif source == "jellyfin":  # the webhook plugin's template names the item; the API: its file
        MediaServerApi.files["f00dfeed"] = theirs
        sent = requests.post(server.url + "/webhooks/jellyfin", headers=AUTH, timeout=30,
                             json={"NotificationType": "ItemAdded", "ItemId": "f00dfeed"})
    else:  # Plex names the item; its own API gives the file
        MediaServerApi.files["4711"] = theirs
        sent = requests.post(server.url + "/webhooks/plex", headers=AUTH, timeout=30, files={
            "payload": (None, json.dumps({"event": "library.new",
                                          "Metadata": {"ratingKey": "4711"}}))})
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] in ("queued", "running", "succeeded")
    subtitles = film.with_name(f"{film.stem}.en.srt")
    wait_for(subtitles, server)
    assert words_of(subtitles.read_text())[:4] == ["raj", "the", "train", "to"]


def test_webhooks_that_are_not_film_additions_or_name_no_film_are_answered(
        server: Server, films: Path) -> None:
    ignored = requests.post(server.url + "/webhooks/jellyfin", headers=AUTH, timeout=10,
                            json={"NotificationType": "PlaybackStart", "Path": "/x.mkv"})
    assert ignored.status_code == 200 and "ignored" in ignored.json()
    nameless = requests.post(server.url + "/webhooks/emby", headers=AUTH, timeout=10,
                             json={"Event": "library.new", "Item": {}})
    assert nameless.status_code == 422 and "no item path" in nameless.json()["error"]
    outside = requests.post(server.url + "/webhooks/jellyfin", headers=AUTH, timeout=10,
                            json={"NotificationType": "ItemAdded", "Path": "/etc/passwd"})
    assert outside.status_code == 403
    unknown = requests.post(server.url + "/webhooks/plex", headers=AUTH, timeout=10, files={
        "payload": (None, json.dumps({"event": "library.new",
                                      "Metadata": {"ratingKey": "404"}}))})
    assert unknown.status_code == 502 and "Plex did not give item 404" in unknown.json()["error"]


def test_a_film_job_streams_its_progress_and_its_files_download(
        server: Server, films: Path, demo_run: dict[str, Path]) -> None:
    film = films / "progress.mp4"
    shutil.copyfile(demo_run["clip"], film)
    submitted = requests.post(server.url + "/jobs", headers=AUTH, timeout=30,
                              json={"path": str(film), "settings": ["mux.enabled=false"]})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["id"]
    events = []
    with requests.get(f"{server.url}/jobs/{job}/events", headers=AUTH, stream=True,
                      timeout=300) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
    assert events[-1] == "end" and "stage" in events
    status = requests.get(f"{server.url}/jobs/{job}", headers=AUTH, timeout=10).json()
    assert status["status"] == "succeeded"
    srt = next(f for f in status["files"] if f.endswith(".en.srt"))
    download = requests.get(f"{server.url}/jobs/{job}/files/{srt}", headers=AUTH, timeout=10)
    assert words_of(download.text)[:4] == ["raj", "the", "train", "to"]  # base, not tiny.en
    escape = requests.get(f"{server.url}/jobs/{job}/files/../../../../etc/passwd",
                          headers=AUTH, timeout=10)
    assert escape.status_code == 404
    picture = requests.get(f"{server.url}/jobs/{job}/timeline.png", headers=AUTH, timeout=60)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")


def test_a_queued_job_can_be_cancelled(server: Server, films: Path,
                                       demo_run: dict[str, Path]) -> None:
    jobs = []
    for n in range(2):  # the in-process executor runs one at a time: the second waits
        film = films / f"cancel-{n}.mp4"
        shutil.copyfile(demo_run["clip"], film)
        jobs.append(requests.post(server.url + "/jobs", headers=AUTH, timeout=30,
                                  json={"path": str(film)}).json()["id"])
    cancelled = requests.post(f"{server.url}/jobs/{jobs[1]}/cancel", headers=AUTH, timeout=30)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] in ("cancelled", "running")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = [requests.get(f"{server.url}/jobs/{j}", headers=AUTH, timeout=10).json()
                for j in jobs]
        if all(r["status"] in ("succeeded", "failed", "cancelled") for r in rows):
            break
        time.sleep(0.5)
    assert [r["status"] for r in rows] == ["succeeded", "cancelled"]
    missing = requests.post(server.url + "/jobs/nope/cancel", headers=AUTH, timeout=10)
    assert missing.status_code == 404


def test_serving_beyond_loopback_without_a_token_is_refused(tmp_path: Path) -> None:
    done = bolly("serve", "--host", "0.0.0.0", "--state", tmp_path / "state", cwd=tmp_path,
                 env={"BOLLY_RAY_API_TOKEN": ""})
    assert_one_line_error(done, 2, "needs a bearer token", "BOLLY_RAY_API_TOKEN")
    assert not (tmp_path / "state").exists()


def test_an_asr_request_that_waits_too_long_is_answered_504_and_its_job_goes_on(
        tmp_path: Path, demo_run: dict[str, Path]) -> None:
    with running_server(tmp_path / "state", "--executor", "local", "--request-timeout", "0.5",
                        *DEMO_SETTINGS) as server:
        audio = pcm_of(demo_run["audio"])
        waited = post_audio(server.url + "/asr", audio, language="en", output="srt",
                                encode="false")
        assert waited.status_code == 504
        assert "ask again to wait for the same job" in waited.json()["error"]
        deadline = time.monotonic() + 300
        again = waited
        while again.status_code == 504 and time.monotonic() < deadline:
            again = post_audio(server.url + "/asr", audio, language="en", output="srt",
                                encode="false")
        assert again.status_code == 200, again.text
        assert again.headers["X-Bolly-Ray-Served"] in ("joined", "cached")
        assert words_of(again.text) == words_of(demo_run["srt"].read_text())


def test_media_sent_over_http_is_a_job_and_sending_it_again_finds_that_job(
        server: Server, demo_run: dict[str, Path]) -> None:
    # the demuxed WAV (under the 1 MB upload limit of this server), as a film would be sent
    options = json.dumps({"source_language": "en", "settings": ["mux.enabled=false"]})

    def send() -> requests.Response:
        return requests.post(server.url + "/jobs/upload", headers=AUTH, timeout=60, files={
            "file": ("film.wav", demo_run["audio"].read_bytes()), "options": (None, options)})

    first = send()
    assert first.status_code == 202, first.text
    job = first.json()["id"]
    deadline = time.monotonic() + 300
    status = first.json()
    while status["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        status = requests.get(f"{server.url}/jobs/{job}", headers=AUTH, timeout=10).json()
    assert status["status"] == "succeeded", status
    again = send()
    assert (again.status_code, again.json()["id"], again.json()["runs"]) == (200, job, 1)
    bad = requests.post(server.url + "/jobs/upload", headers=AUTH, timeout=60, files={
        "file": ("film.mp4", b"not a film"), "options": (None, options)})
    assert bad.status_code == 400 and "not audio ffmpeg can read" in bad.json()["error"]
