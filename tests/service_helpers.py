"""Running the real `bolly-ray serve` for tests: a subprocess on a free port, in its own
process group (so a test can crash it, embedded Ray and all, like a power cut)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import BOLLY_RAY

DEMO_SETTINGS = ("--set", "asr.model=tiny.en", "--set", "asr.beam_size=1",
                 "--source-language", "en")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    state: Path

    def crash(self) -> None:
        """SIGKILL to the server and everything it started (its embedded Ray too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.crash()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(state: Path, *args: str | Path, env: dict[str, str] | None = None,
                 ready_s: float = 120) -> Server:
    port = free_port()
    log = state.parent / f"{state.name}.{port}.log"
    state.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(BOLLY_RAY), "serve", "--port", str(port), "--state", str(state),
             *map(str, args)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", process, log, state)
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{server.log_text()}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(server.url + "/status", timeout=5).ok:
                return server
        time.sleep(0.3)
    server.crash()
    raise AssertionError(f"serve did not answer in {ready_s} s:\n{server.log_text()}")


@contextlib.contextmanager
def running_server(state: Path, *args: str | Path, env: dict[str, str] | None = None
                   ) -> Iterator[Server]:
    server = start_server(state, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


def pcm_of(wav_path: Path, extra_silence_s: float = 0.0) -> bytes:
    """The WAV's samples as Bazarr sends them: raw s16le 16 kHz mono, no header."""
    with wave.open(str(wav_path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes()) + b"\0\0" * int(16000 * extra_silence_s)


def post_audio(url: str, audio: bytes, timeout: float = 600, **params: str
               ) -> requests.Response:
    """A request exactly as Bazarr's Whisper provider sends it: the query string, one
    multipart part named audio_file with no content type, and (5 s, timeout) timeouts."""
    return requests.post(url, params=params, files={"audio_file": audio},
                         timeout=(5, timeout))
