"""Uploaded audio, stored by content: the same bytes are the same file, found by its hash.

Bazarr sends the whole audio track as raw PCM (16 kHz, mono, signed 16-bit little-endian,
no header: `encode=false`); other clients send any media file ffmpeg reads (`encode=true`).
Raw PCM is wrapped in a WAV header as it is copied, so every stage reads a normal file. The
hash covers the bytes and how they were sent, and names the stored file; it is half of the
request's deduplication key. A file that is empty, not PCM, or not media ffmpeg can read is
refused here, and nothing of it is kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from bolly_ray.errors import MediaError
from bolly_ray.service.errors import RequestError
from bolly_ray.stages.support.media import probe

CHUNK = 1 << 20
PCM_RATE = 16_000
SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,6}")


def store_upload(source: BinaryIO, folder: Path, raw_pcm: bool, filename: str = "") -> Path:
    """The upload as a file under `folder` named by its content hash, checked to be audio."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".upload-")
    partial = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _copy_pcm(source, out) if raw_pcm else _copy(source, out)
        suffix = ".wav" if raw_pcm else _suffix(filename)
        stored = folder / f"{digest}{suffix}"
        if not raw_pcm:
            _check_media(partial)
        os.replace(partial, stored)
        return stored
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


def _copy(source: BinaryIO, out: BinaryIO) -> str:
    return _pump(source, out.write, hashlib.sha256(b"file\0"))


def _copy_pcm(source: BinaryIO, target: BinaryIO) -> str:
    with wave.open(target, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(PCM_RATE)
        return _pump(source, out.writeframesraw, hashlib.sha256(b"s16le-16k-mono\0"),
                     sample_bytes=2)


def _pump(source: BinaryIO, write: Callable[[bytes], object], digest: Any,
          sample_bytes: int = 1) -> str:
    """Copy `source` through `write` chunk by chunk, hashing it; refuse an empty body and,
    for PCM, one that is not whole samples. The hash, in hex."""
    size = 0
    while block := source.read(CHUNK):
        digest.update(block)
        write(block)
        size += len(block)
    if size == 0:
        raise RequestError("audio_file is empty")
    if size % sample_bytes:
        raise RequestError("audio_file: with encode=false the body must be raw 16-bit PCM "
                           f"(16 kHz mono s16le), and {size} bytes is not a whole number of "
                           "samples")
    return str(digest.hexdigest())


def _suffix(filename: str) -> str:
    found = SUFFIX.fullmatch(Path(filename).suffix)
    return found.group(0).lower() if found else ""


def _check_media(path: Path) -> None:
    try:
        probe(path)
    except MediaError as err:
        reason = str(err).rsplit(": ", 1)[-1]  # ffmpeg's words, not our temporary file's name
        raise RequestError(f"audio_file: not audio ffmpeg can read ({reason})") from None
