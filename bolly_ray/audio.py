"""Reading the demuxed WAV (16 kHz mono PCM) into the float arrays speech models take.

numpy is imported on use: every stage module is imported in every stage container, and
the images of stages that never touch audio samples carry no numpy.
"""

from __future__ import annotations

import wave
from pathlib import Path
from typing import TYPE_CHECKING

from bolly_ray.errors import MediaError

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATE = 16_000


def read_wav(path: Path) -> np.ndarray:
    """Samples in [-1, 1] as float32; refuses anything but 16 kHz mono 16-bit PCM."""
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as err:
        raise MediaError(f"{path}: not a readable WAV file ({err})") from None
    if shape != (SAMPLE_RATE, 1, 2):
        raise MediaError(f"{path}: expected 16 kHz mono 16-bit PCM, found {shape[0]} Hz, "
                         f"{shape[1]} channel(s), {8 * shape[2]}-bit")
    import numpy as np

    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
