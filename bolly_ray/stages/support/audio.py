"""Reading the demuxed WAV (16 kHz mono PCM) into the float arrays speech models take.

A film's WAV is read whole only when that is affordable: `read_wav` for short clips, and
`read_wav_span` for a stretch (a window, a span of speech), so that a stage's memory
stays bounded by what it decodes at once, not by the film's length (three hours are 690 MB
as float32). numpy is imported on use: every stage module is imported in every stage
container, and the images of stages that never touch audio samples carry no numpy.
"""

from __future__ import annotations

import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bolly_ray.errors import MediaError

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000


@contextmanager
def open_wav(path: Path) -> Iterator[wave.Wave_read]:
    """The WAV open for reading; refuses anything but 16 kHz mono 16-bit PCM."""
    try:
        wav = wave.open(str(path), "rb")  # noqa: SIM115 - closed by the `with` below
    except (wave.Error, EOFError, OSError) as err:
        raise MediaError(f"{path}: not a readable WAV file ({err})") from None
    with wav:
        shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if shape != (SAMPLE_RATE, 1, 2):
            raise MediaError(f"{path}: expected 16 kHz mono 16-bit PCM, found {shape[0]} Hz, "
                             f"{shape[1]} channel(s), {8 * shape[2]}-bit")
        yield wav


def _floats(wav: wave.Wave_read, frames: int, path: Path) -> np.ndarray:
    import numpy as np

    try:
        data = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as err:
        raise MediaError(f"{path}: not a readable WAV file ({err})") from None
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def read_wav(path: Path) -> np.ndarray:
    """Samples in [-1, 1] as float32; refuses anything but 16 kHz mono 16-bit PCM."""
    with open_wav(path) as wav:
        return _floats(wav, wav.getnframes(), path)


def wav_samples(path: Path) -> int:
    """How many samples the WAV holds (its header says so; nothing is decoded)."""
    with open_wav(path) as wav:
        return wav.getnframes()


def read_wav_span(path: Path, start_s: float, end_s: float) -> np.ndarray:
    """The samples from `start_s` to `end_s` (clipped to the file) as float32 in [-1, 1]:
    a long film is read a window at a time, never whole."""
    with open_wav(path) as wav:
        first = min(max(0, round(start_s * SAMPLE_RATE)), wav.getnframes())
        last = min(max(first, round(end_s * SAMPLE_RATE)), wav.getnframes())
        wav.setpos(first)
        return _floats(wav, last - first, path)
