"""Deterministic generator of small test media, built by the test-suite itself (no downloads).

Every file is synthesised from ffmpeg's lavfi video sources and espeak-ng speech, encoded with
bit-exact flags and single-threaded encoders so that two builds on the same machine are
byte-identical. `build_all(out_dir)` writes each case plus a `cases.json` manifest (sha256 and
measured values) and is idempotent: files whose recorded sha256 still matches are not rebuilt.
The cases cover the containers and failure modes a movie-to-subtitles pipeline meets: MP4/AAC,
MKV with two language-tagged audio tracks, WebM, audio that starts late, video without audio,
a truncated (unreadable) MP4, a shell-hostile file name and a bare WAV. `make_speech_wav` is
public so demos can make a clip whose transcript and timing are known exactly. Run as a script:
`python tests/media/make_media.py OUTDIR`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bolly_ray.ops.synth import make_speech_wav

# Bump whenever a recipe changes, so stale files in a reused out_dir get rebuilt.
RECIPE_VERSION = 1
MANIFEST = "cases.json"

VIDEO_SIZE = "320x180"
VIDEO_FPS = 25
LATE_AUDIO_OFFSET_S = 1.5

PRIMARY_SENTENCES = (
    "The train to Mumbai leaves at nine.",
    "Raj and Simran meet in Punjab.",
    "The music is loud.",
)
SECONDARY_SENTENCES = (
    "This is the second audio track.",
    "It speaks English instead.",
)

HOSTILE_NAME = '-it\'s a "film" $(touch PWNED) `echo x` नमस्ते café.mkv'

BITEXACT = [
    "-fflags", "+bitexact",
    "-flags:v", "+bitexact",
    "-flags:a", "+bitexact",
    "-map_metadata", "-1",
]  # fmt: skip


@dataclass(frozen=True)
class MediaCase:
    """One generated test file and what a reader of it should find.

    key: stable case name (one of `MEDIA`).
    path: absolute path of the file.
    expect: "ok" (readable, has audio), "no_audio" (readable, no audio stream) or "corrupt"
        (no demuxer can open it; every other field then describes nothing readable).
    audio_duration: end of the first (selected) audio stream in seconds on the container's
        timeline, i.e. audio_start plus the decoded audio length; measured by decoding with
        ffmpeg. None when there is no readable audio.
    audio_start: start_time of the first audio stream as ffprobe reports it (about 1.5 for
        `late_audio`; a few ms below zero is normal for Opus pre-skip). 0.0 without audio.
    audio_languages: ISO 639-2 language tag of each audio stream, in stream order ("und" when
        the container has no tag).
    has_video: whether the file has a video stream.
    spoken_text: what espeak-ng said in the first audio stream, sentences joined by a space;
        empty if it has no speech.
    """

    key: str
    path: Path
    expect: str
    audio_duration: float | None
    audio_start: float
    audio_languages: tuple[str, ...]
    has_video: bool
    spoken_text: str


@dataclass(frozen=True)
class _Recipe:
    """How to build one case, plus the declared (not measured) expectations."""

    key: str
    filename: str
    expect: str
    audio_languages: tuple[str, ...]
    has_video: bool
    spoken_text: str
    build: Callable[[_Workspace, Path], None]


# ----------------------------------------------------------------------------- tools


def _run(cmd: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run a command (argument list, no shell) and return stdout; raise with stderr on failure."""
    proc = subprocess.run(list(cmd), input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err}")
    return proc.stdout


def _ffmpeg(*args: str) -> bytes:
    return _run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y", *args])


def _url(path: Path) -> str:
    """ffmpeg URL for a local file; `file:` stops names like `-x` or `a:b` being misread."""
    return f"file:{path.resolve()}"


@cache
def _video_codec() -> list[str]:
    encoders = _ffmpeg("-encoders").decode()
    if " libx264 " in encoders:
        return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-pix_fmt", "yuv420p"]
    return ["-c:v", "mpeg4", "-q:v", "8"]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


_Track = Literal["primary", "secondary"]


class _Workspace:
    """Scratch dir with the two speech tracks, made on first use and shared by all recipes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._speech: dict[str, Path] = {}

    def speech(self, which: _Track) -> Path:
        if which not in self._speech:
            sentences = PRIMARY_SENTENCES if which == "primary" else SECONDARY_SENTENCES
            wav = self.root / f"{which}.wav"
            make_speech_wav(wav, list(sentences), lead_s=0.3, tail_s=0.3)
            self._speech[which] = wav
        return self._speech[which]

    def seconds(self, which: _Track) -> float:
        return _wav_seconds(self.speech(which))


# ----------------------------------------------------------------------------- recipes


def _video_input(source: str, seconds: float) -> list[str]:
    sep = ":" if "=" in source else "="
    spec = f"{source}{sep}size={VIDEO_SIZE}:rate={VIDEO_FPS}:duration={seconds:.3f}"
    return ["-f", "lavfi", "-i", spec]


def _lang(index: int, language: str, title: str | None = None) -> list[str]:
    args = [f"-metadata:s:a:{index}", f"language={language}"]
    if title:
        args += [f"-metadata:s:a:{index}", f"title={title}"]
    return args


OPUS = ["-c:a", "libopus", "-b:a", "32k", "-ar", "48000"]
AAC = ["-c:a", "aac", "-b:a", "64k"]
VIDEO_THREADS = ["-threads", "1"]


def _build_mp4_aac(ws: _Workspace, dest: Path) -> None:
    # No +faststart: `truncated` relies on the moov atom sitting at the end of this file.
    _ffmpeg(*_video_input("testsrc2", ws.seconds("primary")), "-i", _url(ws.speech("primary")),
            "-map", "0:v", "-map", "1:a", *_video_codec(), *VIDEO_THREADS,
            *AAC, "-ar", "48000", *_lang(0, "hin"), *BITEXACT, "-f", "mp4", _url(dest))  # fmt: skip


def _build_mkv_two_audio(ws: _Workspace, dest: Path) -> None:
    seconds = max(ws.seconds("primary"), ws.seconds("secondary"))
    _ffmpeg(*_video_input("testsrc2", seconds),
            "-i", _url(ws.speech("primary")), "-i", _url(ws.speech("secondary")),
            "-map", "0:v", "-map", "1:a", "-map", "2:a", *_video_codec(), *VIDEO_THREADS, *OPUS,
            *_lang(0, "hin", "Hindi"), *_lang(1, "eng", "English"),
            *BITEXACT, "-f", "matroska", _url(dest))  # fmt: skip


def _build_webm(ws: _Workspace, dest: Path) -> None:
    _ffmpeg(*_video_input("testsrc2", ws.seconds("primary")), "-i", _url(ws.speech("primary")),
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libvpx", "-deadline", "good", "-cpu-used", "5", "-b:v", "150k", *VIDEO_THREADS,
            *OPUS, *_lang(0, "hin"), *BITEXACT, "-f", "webm", _url(dest))  # fmt: skip


def _build_late_audio(ws: _Workspace, dest: Path) -> None:
    seconds = LATE_AUDIO_OFFSET_S + ws.seconds("primary")
    _ffmpeg(*_video_input("color=c=darkgreen", seconds),
            "-itsoffset", str(LATE_AUDIO_OFFSET_S), "-i", _url(ws.speech("primary")),
            "-map", "0:v", "-map", "1:a", *_video_codec(), *VIDEO_THREADS, *OPUS,
            *_lang(0, "hin"), *BITEXACT, "-f", "matroska", _url(dest))  # fmt: skip


def _build_no_audio(ws: _Workspace, dest: Path) -> None:
    _ffmpeg(*_video_input("testsrc2", 5.0), "-map", "0:v", "-an", *_video_codec(),
            *VIDEO_THREADS, *BITEXACT, "-f", "mp4", _url(dest))  # fmt: skip


def _build_truncated(ws: _Workspace, dest: Path) -> None:
    whole = ws.root / "whole.mp4"
    _build_mp4_aac(ws, whole)
    data = whole.read_bytes()
    # 40 % keeps ftyp and part of mdat but never reaches the trailing moov: unplayable.
    dest.write_bytes(data[: len(data) * 2 // 5])


def _build_hostile_name(ws: _Workspace, dest: Path) -> None:
    _ffmpeg(*_video_input("color=c=maroon", ws.seconds("primary")),
            "-i", _url(ws.speech("primary")),
            "-map", "0:v", "-map", "1:a", "-c:v", "mpeg4", "-q:v", "8", *VIDEO_THREADS,
            *AAC, "-ar", "44100", "-ac", "2", *_lang(0, "hin"),
            *BITEXACT, "-f", "matroska", _url(dest))  # fmt: skip


def _build_wav_only(ws: _Workspace, dest: Path) -> None:
    _ffmpeg("-i", _url(ws.speech("primary")), "-ar", "44100", "-ac", "2", "-c:a", "pcm_s16le",
            *BITEXACT, "-f", "wav", _url(dest))  # fmt: skip


_SPOKEN = " ".join(PRIMARY_SENTENCES)
_RECIPES: tuple[_Recipe, ...] = (
    _Recipe("mp4_aac", "mp4_aac.mp4", "ok", ("hin",), True, _SPOKEN, _build_mp4_aac),
    _Recipe("mkv_two_audio", "mkv_two_audio.mkv", "ok", ("hin", "eng"), True, _SPOKEN,
            _build_mkv_two_audio),
    _Recipe("webm", "webm.webm", "ok", ("hin",), True, _SPOKEN, _build_webm),
    _Recipe("late_audio", "late_audio.mkv", "ok", ("hin",), True, _SPOKEN, _build_late_audio),
    _Recipe("no_audio", "no_audio.mp4", "no_audio", (), True, "", _build_no_audio),
    _Recipe("truncated", "truncated.mp4", "corrupt", (), False, "", _build_truncated),
    _Recipe("hostile_name", HOSTILE_NAME, "ok", ("hin",), True, _SPOKEN, _build_hostile_name),
    _Recipe("wav_only", "wav_only.wav", "ok", ("und",), False, _SPOKEN, _build_wav_only),
)  # fmt: skip

MEDIA: tuple[str, ...] = tuple(r.key for r in _RECIPES)


# ----------------------------------------------------------------------------- measuring


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON (streams + format) for a file; raises RuntimeError if it cannot be read."""
    out = _run(["ffprobe", "-v", "error", "-show_streams", "-show_format",
                "-of", "json", _url(path)])  # fmt: skip
    return json.loads(out)


def _audio_end(path: Path, format_start: float) -> float:
    """End of audio stream 0 on the container timeline, by decoding it to the null muxer."""
    progress = _ffmpeg("-i", _url(path), "-map", "0:a:0", "-progress", "pipe:1", "-f", "null", "-")
    values = [line.split("=", 1)[1] for line in progress.decode().splitlines()
              if line.startswith("out_time_us=")]  # fmt: skip
    # ffmpeg rebases timestamps so the file's start_time is 0; undo that to get container time.
    return round(int(values[-1]) / 1e6 + format_start, 6)


def _measure(recipe: _Recipe, path: Path) -> tuple[float | None, float]:
    """Measured (audio_duration, audio_start) of the first audio stream, if any."""
    if recipe.expect != "ok":
        return None, 0.0
    probe = ffprobe(path)
    audio = [s for s in probe["streams"] if s["codec_type"] == "audio"]
    start = round(float(audio[0].get("start_time", 0.0)), 6)
    format_start = float(probe["format"].get("start_time", 0.0))
    return _audio_end(path, format_start), start


# ----------------------------------------------------------------------------- building


def _load_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if manifest.get("recipe_version") != RECIPE_VERSION:
        return {}
    return manifest.get("cases", {})


def _save_manifest(out_dir: Path, cases: dict[str, MediaCase], hashes: dict[str, str]) -> None:
    records = {}
    for key, case in cases.items():
        record = asdict(case)
        record["path"] = case.path.name
        record["sha256"] = hashes[key]
        records[key] = record
    text = json.dumps({"recipe_version": RECIPE_VERSION, "cases": records},
                      indent=2, ensure_ascii=False)  # fmt: skip
    # Write-then-rename so a concurrent reader never sees half a manifest.
    partial = out_dir / f".{MANIFEST}.{os.getpid()}"
    partial.write_text(text + "\n", encoding="utf-8")
    partial.replace(out_dir / MANIFEST)


def _case_from_record(out_dir: Path, record: dict[str, Any]) -> MediaCase:
    fields = {k: v for k, v in record.items() if k != "sha256"}
    fields["path"] = out_dir / record["path"]
    fields["audio_languages"] = tuple(record["audio_languages"])
    return MediaCase(**fields)


def _reuse(out_dir: Path, recipe: _Recipe, record: dict[str, Any] | None) -> MediaCase | None:
    """The recorded case if its file is present and unchanged, else None (so it gets rebuilt)."""
    path = out_dir / recipe.filename
    if record is None or not path.is_file() or sha256_file(path) != record.get("sha256"):
        return None
    try:
        return _case_from_record(out_dir, record)
    except (KeyError, TypeError):  # hand-edited or foreign manifest
        return None


def _build_one(recipe: _Recipe, ws: _Workspace, path: Path) -> MediaCase:
    partial = ws.root / f"partial-{recipe.key}"
    recipe.build(ws, partial)
    partial.replace(path)
    duration, start = _measure(recipe, path)
    return MediaCase(
        key=recipe.key,
        path=path,
        expect=recipe.expect,
        audio_duration=duration,
        audio_start=start,
        audio_languages=recipe.audio_languages,
        has_video=recipe.has_video,
        spoken_text=recipe.spoken_text,
    )


def build_all(out_dir: Path) -> dict[str, MediaCase]:
    """Build every case into `out_dir` and return them by key, in `MEDIA` order.

    Files already present whose sha256 matches `cases.json` (same recipe version) are reused
    with their recorded measurements, so a second call on a complete dir only hashes files.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = _load_manifest(out_dir)
    cases: dict[str, MediaCase] = {}
    hashes: dict[str, str] = {}
    # Scratch lives inside out_dir so the final rename never crosses filesystems.
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp:
        ws = _Workspace(Path(tmp))
        for recipe in _RECIPES:
            case = _reuse(out_dir, recipe, recorded.get(recipe.key))
            if case is None:
                case = _build_one(recipe, ws, out_dir / recipe.filename)
            cases[recipe.key] = case
            hashes[recipe.key] = sha256_file(case.path)
    _save_manifest(out_dir, cases, hashes)
    return cases


def _require_tools() -> None:
    missing = [t for t in ("ffmpeg", "ffprobe", "espeak-ng") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)}")


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: make_media.py OUTDIR", file=sys.stderr)
        return 2
    _require_tools()
    for key, case in build_all(Path(argv[0])).items():
        print(f"{key:14} {case.expect:9} dur={case.audio_duration} start={case.audio_start} "
              f"langs={','.join(case.audio_languages) or '-'} {case.path.name}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
