"""A long test film made cheaply: hours of faint room tone with sparse espeak-ng sentences.

The WAV is written block by block (never the whole waveform in memory), so a three-hour
film costs seconds and a few megabytes to make; each sentence is spoken once by espeak-ng
and reused, and its exact span is returned as the ground truth. `make_long_film` then wraps
the WAV with a tiny video stream (64x36, 1 fps, one black frame a second) in an MP4 with
AAC audio, as a film would come. Run as a script for the benchmark's film:
`python tests/media/long_film.py OUT.mp4 --hours 3`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import wave
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from bolly_ray.ops.synth import SPEECH_RATE, speak
from bolly_ray.stages.support.media import ffmpeg_input, run_tool

SENTENCES = (
    "The train to Mumbai leaves at nine in the morning.",
    "Raj and Simran meet again at the station in Punjab.",
    "Her father says that the wedding will not happen.",
    "The music is loud and everybody is dancing in the street.",
    "Please open the window before the rain starts.",
    "My brother works in a big hospital in Delhi.",
    "We will meet tomorrow morning at the old temple.",
    "Nobody told me that the film would be this long.",
)
NOISE_STD = 20  # int16 units, about -64 dBFS: room tone, not digital silence
BLOCK_S = 60  # seconds of samples generated at a time
Span = tuple[float, float, str]


@cache
def spoken(sentence: str) -> np.ndarray:
    return np.frombuffer(speak(sentence).tobytes(), dtype=np.int16)


def sparse_script(seconds: float, every_s: tuple[float, float] = (60.0, 90.0),
                  lead_s: float = 20.0) -> list[tuple[float, str]]:
    """(start, sentence) pairs: one sentence every 60-90 s (deterministic), cycling the script."""
    rng = np.random.default_rng(7)
    script, at, n = [], lead_s, 0
    while at + 10 < seconds:
        script.append((round(at, 3), SENTENCES[n % len(SENTENCES)]))
        at += float(rng.uniform(*every_s))
        n += 1
    return script


def run_of_speech(start_s: float, sentences: Sequence[str], gap_s: float = 0.15
                  ) -> list[tuple[float, str]]:
    """(start, sentence) pairs spoken one after another with `gap_s` between them: a pause
    too short for VAD to end a region, so the run is one long region (a song, a monologue)."""
    script, at = [], start_s
    for sentence in sentences:
        script.append((round(at, 3), sentence))
        at += len(spoken(sentence)) / SPEECH_RATE + gap_s
    return script


def write_long_wav(path: Path, seconds: float, script: Sequence[tuple[float, str]],
                   noise_std: int = NOISE_STD) -> list[Span]:
    """A 16 kHz mono WAV of room tone with each sentence starting at its time; the spans."""
    total = round(seconds * SPEECH_RATE)
    placed = [(round(at * SPEECH_RATE), spoken(text), text) for at, text in script]
    rng = np.random.default_rng(1)
    block = BLOCK_S * SPEECH_RATE
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SPEECH_RATE)
        for first in range(0, total, block):
            samples = rng.normal(0, noise_std, min(block, total - first)) if noise_std else \
                np.zeros(min(block, total - first))
            for start, voice, _ in placed:
                _overlay(samples, first, start, voice)
            out.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return [(start / SPEECH_RATE, (start + len(voice)) / SPEECH_RATE, text)
            for start, voice, text in placed]


def _overlay(samples: np.ndarray, first: int, start: int, voice: np.ndarray) -> None:
    """Add the part of `voice` (starting at sample `start`) that falls in this block."""
    lo, hi = max(first, start), min(first + len(samples), start + len(voice))
    if lo < hi:
        samples[lo - first:hi - first] += voice[lo - start:hi - start]


def make_long_film(dest: Path, seconds: float, script: Sequence[tuple[float, str]] | None = None
                   ) -> list[Span]:
    """An MP4 (64x36 1 fps H.264, 48 kHz stereo AAC) of a sparse long film."""
    script = sparse_script(seconds) if script is None else script
    with tempfile.TemporaryDirectory(prefix="long-film-", dir=dest.parent) as tmp:
        wav = Path(tmp) / "audio.wav"
        spans = write_long_wav(wav, seconds, script)
        run_tool(["ffmpeg", "-nostdin", "-v", "error", "-y",
                  "-f", "lavfi", "-i", f"color=c=black:s=64x36:r=1:d={seconds}",
                  "-i", ffmpeg_input(wav), "-map", "0:v", "-map", "1:a",
                  "-c:v", "libx264", "-preset", "ultrafast", "-g", "600",
                  "-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2",
                  "-shortest", "file:" + str(dest)],
                 timeout_s=3600, what=f"encoding {dest}")
    return spans


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--hours", type=float, default=3.0)
    args = parser.parse_args(argv)
    spans = make_long_film(args.dest, args.hours * 3600)
    print(f"{args.dest}: {args.hours} h, {len(spans)} sentences")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
