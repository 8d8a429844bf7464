"""The service against the batch command on the same jobs: N different audio files at once.

N versions of the demo clip's audio (espeak speech, the demo's; each with a different length
of trailing silence, so no two are the same request) are subtitled twice, side by side:
  batch:   `bolly-ray run` of N job files (the jobs the service would make: same media, same
           settings), one command on an embedded Ray;
  service: `bolly-ray serve` already up (embedded Ray), N clients posting the raw PCM to
           `/asr` at the same moment, as Bazarr does.
Both are measured by the manifests (first stage start to last stage end over the N jobs:
the pipeline's own makespan) and by the clock (the command's wall time; for the service,
first request sent to last answer received). Reported: the service/batch makespan ratio.
Run: `PYTHONPATH=. .venv/bin/python bench/bench_service.py --jobs 20`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import requests

from bench.machine import machine
from tests.service_helpers import DEMO_SETTINGS, pcm_of, post_audio, running_server

BOLLY_RAY = Path(sys.executable).with_name("bolly-ray")
SETTINGS = ["asr.model=tiny.en", "asr.beam_size=1", "mux.enabled=false"]


def demo_audio(folder: Path) -> Path:
    done = subprocess.run([str(BOLLY_RAY), "demo", "--out", str(folder / "demo"), "--json",
                           "--executor", "local"], capture_output=True, text=True, check=True)
    return Path(json.loads(done.stdout)["jobs"][0]["job_dir"]) / "01_demux" / "audio.wav"


def variants(audio: Path, count: int) -> list[bytes]:
    """`count` different uploads: the speech with 0.1, 0.2, ... s of silence after it."""
    return [pcm_of(audio, extra_silence_s=0.1 * (n + 1)) for n in range(count)]


def write_wav(pcm: bytes, path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm)
    return path


def makespan(job_dirs: list[Path]) -> float:
    starts, ends = [], []
    for folder in job_dirs:
        for record in json.loads((folder / "manifest.json").read_text())["stages"].values():
            if record.get("started_at") and record.get("ended_at"):
                starts.append(dt.datetime.fromisoformat(record["started_at"]).timestamp())
                ends.append(dt.datetime.fromisoformat(record["ended_at"]).timestamp())
    return max(ends) - min(starts)


def batch(uploads: list[bytes], folder: Path) -> tuple[float, float]:
    jobs = []
    for n, pcm in enumerate(uploads):
        media = write_wav(pcm, folder / f"audio-{n}.wav")
        job = {"id": f"batch-{n}", "media": str(media), "name": "audio",
               "source_language": "en", "target_languages": [], "out_root": str(folder / "out"),
               "execution": {"executor": "ray"}}
        path = folder / f"batch-{n}.job.json"
        path.write_text(json.dumps(job))
        jobs.append(path)
    overrides = [arg for setting in SETTINGS for arg in ("--set", setting)]
    started = time.monotonic()
    subprocess.run([str(BOLLY_RAY), "run", *map(str, jobs), *overrides, "--quiet", "--json"],
                   check=True, capture_output=True, text=True)
    wall = time.monotonic() - started
    return makespan(sorted(p.parent for p in (folder / "out").rglob("manifest.json"))), wall


def service(uploads: list[bytes], folder: Path) -> tuple[float, float]:
    with running_server(folder / "state", "--executor", "ray", *DEMO_SETTINGS) as server:
        answers: list[requests.Response] = []
        clients = [threading.Thread(target=lambda pcm=pcm: answers.append(post_audio(
            server.url + "/asr", pcm, timeout=3600, language="en", output="srt",
            encode="false"))) for pcm in uploads]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        wall = time.monotonic() - started
    failed = [a.text for a in answers if a.status_code != 200]
    assert not failed and len(answers) == len(uploads), failed[:3]
    return makespan(sorted(p.parent for p in (folder / "state").rglob("manifest.json"))), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="br-bench-", dir="/tmp") as tmp:
        os.environ.update({**env, "RAY_TMPDIR": tmp})
        root = Path(tmp)
        uploads = variants(demo_audio(root), args.jobs)
        (root / "batch").mkdir()
        batch_span, batch_wall = batch(uploads, root / "batch")
        service_span, service_wall = service(uploads, root / "service")
    print(f"Machine: {machine()}")
    print(f"{args.jobs} jobs of {len(uploads[0]) / 32000:.1f} s of the demo clip's speech each")
    print(f"batch   (bolly-ray run):   makespan {batch_span:6.1f} s, wall {batch_wall:6.1f} s")
    print(f"service (bolly-ray serve): makespan {service_span:6.1f} s, wall {service_wall:6.1f} s")
    print(f"service/batch makespan ratio: {service_span / batch_span:.3f} "
          f"(wall: {service_wall / batch_wall:.3f})")


if __name__ == "__main__":
    main()
