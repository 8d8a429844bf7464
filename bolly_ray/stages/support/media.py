"""Probing and transcoding media through ffprobe/ffmpeg, safely.

Every call passes an argument list (never a shell) and addresses files through the `file:`
protocol, so a file name such as `-i`, `$(rm -rf ~)` or `concat:a|b` is only ever a file
name. Probing returns a typed `MediaInfo` and refuses media outside sane caps before any
work starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bolly_ray.errors import MediaError, StageTimeoutError

MAX_DURATION_S = 12 * 3600.0
MAX_STREAMS = 64
MAX_VIDEO_PIXELS = 8192 * 8192
PROBE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class AudioStream:
    index: int
    """Absolute stream index in the container."""
    order: int
    """Position among the audio streams (0 = first audio stream)."""
    codec: str
    channels: int
    sample_rate: int
    language: str | None
    title: str | None
    start_time: float
    duration: float | None
    default: bool


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format_name: str
    duration: float
    start_time: float
    size_bytes: int
    audio: tuple[AudioStream, ...]
    video_streams: int
    subtitle_streams: int
    video_sizes: tuple[tuple[int, int], ...] = ()
    """(width, height) of each video stream, as the file declares it."""


def ffmpeg_input(path: Path) -> str:
    """The path as an ffmpeg URL that can never be read as an option or protocol."""
    return "file:" + str(path.resolve())


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MediaError(f"{name} is not installed: install ffmpeg (e.g. apt-get install ffmpeg)")
    return found


def run_tool(args: list[str], *, timeout_s: float, what: str) -> subprocess.CompletedProcess[bytes]:
    """Run ffmpeg/ffprobe; a non-zero exit becomes a MediaError with ffmpeg's last line."""
    argv = [require_tool(args[0]), *args[1:]]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise StageTimeoutError(f"{what}: {args[0]} ran past {timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise MediaError(f"{what}: {last_error_line(done.stderr)}")
    return done


def last_error_line(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1] if lines else "ffmpeg failed without a message"


def probe(path: Path, *, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """Probe `path` and check it is media bolly-ray can process."""
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    args = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
            ffmpeg_input(path)]
    done = run_tool(args, timeout_s=timeout_s, what=f"{path}: cannot read media")
    info = _parse_probe(path, json.loads(done.stdout or b"{}"))
    _check_caps(info)
    return info


def _parse_probe(path: Path, data: dict) -> MediaInfo:
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    if not fmt:
        raise MediaError(f"{path}: not a media file ffprobe recognises")
    audio = tuple(_audio_stream(s, order) for order, s in
                  enumerate(s for s in streams if s.get("codec_type") == "audio"))
    return MediaInfo(
        path=path,
        format_name=str(fmt.get("format_name", "")),
        duration=_float(fmt.get("duration")),
        start_time=_float(fmt.get("start_time")),
        size_bytes=int(fmt.get("size") or path.stat().st_size),
        audio=audio,
        video_streams=sum(1 for s in streams if s.get("codec_type") == "video"
                          and not (s.get("disposition") or {}).get("attached_pic")),
        subtitle_streams=sum(1 for s in streams if s.get("codec_type") == "subtitle"),
        video_sizes=tuple((int(s.get("width") or 0), int(s.get("height") or 0))
                          for s in streams if s.get("codec_type") == "video"),
    )


def _audio_stream(stream: dict, order: int) -> AudioStream:
    tags = stream.get("tags") or {}
    duration = stream.get("duration")
    return AudioStream(
        index=int(stream["index"]),
        order=order,
        codec=str(stream.get("codec_name", "unknown")),
        channels=int(stream.get("channels") or 0),
        sample_rate=int(stream.get("sample_rate") or 0),
        language=tags.get("language") or tags.get("LANGUAGE"),
        title=tags.get("title") or tags.get("TITLE"),
        start_time=_float(stream.get("start_time")),
        duration=_float(duration) if duration is not None else None,
        default=bool((stream.get("disposition") or {}).get("default")),
    )


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _check_caps(info: MediaInfo) -> None:
    total = len(info.audio) + info.video_streams + info.subtitle_streams
    if total > MAX_STREAMS:
        raise MediaError(f"{info.path}: {total} streams is more than the {MAX_STREAMS} allowed")
    for width, height in info.video_sizes:
        if width * height > MAX_VIDEO_PIXELS:
            raise MediaError(f"{info.path}: a {width}x{height} video stream is more than the "
                             f"{MAX_VIDEO_PIXELS // 1_000_000} megapixels allowed")
    if info.duration > MAX_DURATION_S:
        raise MediaError(f"{info.path}: duration {info.duration:.0f} s is more than the "
                         f"{MAX_DURATION_S:.0f} s allowed")
    if not info.audio:
        raise MediaError(f"{info.path}: has no audio stream")
    if info.duration <= 0 and all(not a.duration for a in info.audio):
        raise MediaError(f"{info.path}: has no measurable duration (truncated or empty?)")
