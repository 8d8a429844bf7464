"""Media files built to lie, overflow or be empty, for the hostile-input tests.

Each builder writes one small file with ffmpeg or by hand and, where ffmpeg cannot make the
lie, patches the container's own header bytes: a Matroska duration of 115 days, a video
stream declaring 16000x16000 pixels, a WAV header claiming 4 GiB of samples it does not hold.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _patch(path: Path, marker: bytes, value: bytes) -> None:
    """Overwrite the bytes right after the first `marker` (an element id and its size)."""
    data = bytearray(path.read_bytes())
    at = data.find(marker)
    if at < 0:
        raise AssertionError(f"{marker.hex()} not found in {path}")
    data[at + len(marker):at + len(marker) + len(value)] = value
    path.write_bytes(bytes(data))


def not_media(path: Path) -> Path:
    path.write_text("this is not a film\n" * 50)
    return path


def lying_wav_header(path: Path) -> Path:
    """A WAV header claiming 4 GiB of 8 kHz samples in front of one second of them."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    path.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt " + fmt
                     + b"data" + struct.pack("<I", 0xFFFFFFF0) + bytes([128]) * 8000)
    return path


def empty_audio(path: Path) -> Path:
    """A valid WAV header with no samples at all."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + fmt + b"data"
                     + struct.pack("<I", 0))
    return path


def absurd_duration(path: Path) -> Path:
    """Two seconds of film whose Matroska header says it lasts 10^7 s (115 days)."""
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x36:r=1", "-f", "lavfi", "-i",
            "sine=f=440:sample_rate=8000", "-t", "2", "-c:v", "mpeg4", "-c:a", "aac",
            str(path))
    _patch(path, bytes([0x44, 0x89, 0x88]), struct.pack(">d", 1e10))  # Duration, in ms
    return path


def absurd_resolution(path: Path) -> Path:
    """Raw video declaring 16000x16000 pixels (256 megapixels a frame)."""
    _ffmpeg("-f", "lavfi", "-i", "color=c=black:s=256x256:r=1", "-f", "lavfi", "-i",
            "sine=f=440:sample_rate=8000", "-t", "2", "-c:v", "rawvideo", "-pix_fmt", "gray",
            "-c:a", "pcm_s16le", str(path))
    for element in (0xB0, 0xBA):  # PixelWidth, PixelHeight: 2-byte values of 256
        _patch(path, bytes([element, 0x82]), (16000).to_bytes(2, "big"))
    return path


def many_streams(path: Path, count: int = 999) -> Path:
    """One second of a tone, as `count` audio streams (ffmpeg's own limit is 1000)."""
    maps = [arg for _ in range(count) for arg in ("-map", "0:a")]
    _ffmpeg("-f", "lavfi", "-i", "sine=f=440:sample_rate=8000:duration=1", *maps,
            "-c:a", "pcm_s16le", str(path))
    return path


def silence(path: Path, seconds: float = 30.0) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds), str(path))
    return path


def noise(path: Path, seconds: float = 30.0) -> Path:
    _ffmpeg("-f", "lavfi", "-i", "anoisesrc=color=white:amplitude=0.3:seed=7:sample_rate=16000",
            "-t", str(seconds), str(path))
    return path
