"""Synthetic speech clips with exactly known timings, for the demo and the tests.

espeak-ng speaks each sentence (deterministically), ffmpeg resamples it to 16 kHz mono, the
silence espeak pads around an utterance is trimmed, and the sentences are joined with fixed
gaps. Because every sample is placed by this code, the span of each sentence is known to
the sample, which makes a ground-truth transcript without any speech recogniser.
"""

from __future__ import annotations

import array
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path

from bolly_ray.errors import MediaError
from bolly_ray.stages.support.media import ffmpeg_input, run_tool

SPEECH_RATE = 16_000
TRIM_THRESHOLD = 328  # about 1 % of int16 full scale: below it is espeak's padding


def speak(sentence: str, voice: str = "en-us") -> array.array[int]:
    """One sentence as 16 kHz mono int16 samples, silence trimmed at both ends, in one of
    espeak-ng's voices (`espeak-ng --voices`)."""
    if shutil.which("espeak-ng") is None:
        raise MediaError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw = Path(tmp) / "s.wav"
        # The text goes in on stdin, so a sentence starting with "-" is never an option.
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), "--stdin"],
                       input=sentence.encode(), capture_output=True, check=True)
        pcm = run_tool(["ffmpeg", "-nostdin", "-v", "error", "-i", ffmpeg_input(raw), "-ac", "1",
                        "-ar", str(SPEECH_RATE), "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"],
                       timeout_s=60, what="resampling espeak-ng output").stdout
    samples = array.array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    loud = [i for i, v in enumerate(samples) if abs(v) > TRIM_THRESHOLD]
    if not loud:
        raise MediaError(f"espeak-ng produced silence for {sentence!r}")
    return samples[loud[0]: loud[-1] + 1]


def make_speech_wav(path: Path, sentences: Sequence[str], gap_s: float = 0.6, *,
                    lead_s: float = 0.0, tail_s: float = 0.0,
                    voices: Sequence[str] | None = None) -> list[tuple[float, float, str]]:
    """Write a 16 kHz mono WAV of `sentences` (each in its voice from `voices`, default
    American English); return each one's exact (start, end, text)."""

    def silence(seconds: float) -> array.array[int]:
        return array.array("h", bytes(2 * round(seconds * SPEECH_RATE)))

    joined = silence(lead_s)
    spans: list[tuple[float, float, str]] = []
    for i, text in enumerate(sentences):
        if i:
            joined.extend(silence(gap_s))
        start = len(joined)
        joined.extend(speak(text, voices[i] if voices else "en-us"))
        spans.append((start / SPEECH_RATE, len(joined) / SPEECH_RATE, text))
    joined.extend(silence(tail_s))
    if sys.byteorder == "big":
        joined.byteswap()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SPEECH_RATE)
        out.writeframes(joined.tobytes())
    return spans
