"""What the executor costs around real work: bolly-ray's demux stage vs plain ffmpeg.

Builds a long film-like file (test-card video + tone/noise audio in MKV, `--minutes` long),
then times, in one run on the same machine:
  1. raw ffmpeg decoding the audio to 16 kHz mono WAV (the work itself),
  2. `bolly-ray run --only demux` on a fresh job (probe, decode, hash, fsync, publish, manifest),
  3. the same command again (everything cached: lock, hash verification, no decoding).
and prints the ratios (2)/(1) and (3)/(2). Run: `.venv/bin/python bench/bench_demux_overhead.py`.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOLLY_RAY = Path(sys.executable).with_name("bolly-ray")


def make_film(path: Path, minutes: float) -> None:
    seconds = str(minutes * 60)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y",
                    "-f", "lavfi", "-i", f"color=c=gray:s=160x90:r=5:d={seconds}",
                    "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=48000:a=0.1",
                    "-c:v", "mpeg4", "-q:v", "31", "-c:a", "aac", "-b:a", "64k", "-ac", "2",
                    f"file:{path}"], check=True)


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-demux-") as tmp:
        root = Path(tmp)
        film = root / "film.mkv"
        make_film(film, args.minutes)
        raw = timed(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", f"file:{film}",
                     "-map", "0:a:0", "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le",
                     f"file:{root / 'raw.wav'}"], root)
        job = root / "job.json"
        job.write_text(json.dumps({"id": "bench", "media": str(film)}))
        first = timed([str(BOLLY_RAY), "run", str(job), "--only", "demux"], root)
        cached = timed([str(BOLLY_RAY), "run", str(job), "--only", "demux"], root)
    result = {"minutes": args.minutes, "raw_ffmpeg_s": round(raw, 2),
              "bolly_ray_demux_s": round(first, 2), "cached_rerun_s": round(cached, 2),
              "demux_over_raw": round(first / raw, 3),
              "cached_over_first": round(cached / first, 3),
              "machine": f"{platform.machine()}, {platform.python_version()}"}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
