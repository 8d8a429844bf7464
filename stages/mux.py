"""mux: the film with soft subtitle tracks, one per language, video and audio copied.

MKV carries SRT or ASS tracks, MP4 carries mov_text (converted from SRT). Tracks are tagged
with ISO 639-2 codes and titled with the language's name; the first target language, when
present, is the default track. Nothing is re-encoded, and bit-exact flags keep the output
byte-identical from run to run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field

from bolly_ray.errors import StageError
from bolly_ray.languages import iso639_2, language_name, same_language
from bolly_ray.media import ffmpeg_input, probe, run_tool
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    Locality,
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)

MP4_FORMATS = ("mov", "mp4", "m4a", "3gp")


class MuxSettings(OptionalStageSettings):
    container: Literal["auto", "mkv", "mp4"] = Field(
        default="auto", description="auto: MP4 for MP4/MOV sources, MKV for everything else")
    mkv_subtitle_format: Literal["srt", "ass"] = Field(
        default="srt", description="Subtitle format stored in MKV (ass keeps styling)")


def subtitle_tracks(folder: Path, fmt: str) -> list[tuple[str, Path]]:
    """(language, file) for every `<name>.<lang>.<fmt>` in the subtitles folder, sorted."""
    tracks = []
    for path in sorted(folder.glob(f"*.{fmt}")):
        match = re.search(r"\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\." + fmt + "$", path.name)
        if match:
            tracks.append((match.group(1), path))
    return tracks


def choose_container(settings: MuxSettings, format_name: str) -> str:
    if settings.container != "auto":
        return settings.container
    return "mp4" if any(f in format_name.split(",") for f in MP4_FORMATS) else "mkv"


def mux_args(source: Path, tracks: list[tuple[str, Path]], container: str,
             default_language: str | None, out: Path) -> list[str]:
    args = ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
            "-i", ffmpeg_input(source)]
    for _, path in tracks:
        args += ["-i", ffmpeg_input(path)]
    args += ["-map", "0:v?", "-map", "0:a?"]
    for n in range(len(tracks)):
        args += ["-map", f"{n + 1}:0"]
    args += ["-c:v", "copy", "-c:a", "copy",
             "-c:s", "mov_text" if container == "mp4" else "copy"]
    for n, (language, _) in enumerate(tracks):
        is_default = same_language(language, default_language) and not any(
            same_language(lang, default_language) for lang, _ in tracks[:n])
        args += [f"-metadata:s:s:{n}", f"language={iso639_2(language)}",
                 f"-metadata:s:s:{n}", f"title={language_name(language)}",
                 f"-disposition:s:{n}", "default" if is_default else "0"]
    args += ["-map_metadata", "0", "-map_chapters", "0", "-fflags", "+bitexact",
             "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             "-f", "mp4" if container == "mp4" else "matroska", "file:" + str(out)]
    return args


class MuxStage(Stage):
    spec = StageSpec(
        name="mux", inputs=(SOURCE_ARTIFACT, "subtitles"), outputs=("video",),
        settings_model=MuxSettings, job_fields=("name", "target_languages"),
        exports={"video": "."}, resources=Resources(cpus=1, memory_mb=512),
        image_tools=("ffmpeg",),
        locality=Locality.SOURCE, critical=False, timeout_s=3 * 3600, version="1")

    def run(self, ctx: StageContext, model: object = None) -> StageResult:
        settings = ctx.settings
        assert isinstance(settings, MuxSettings)
        source = ctx.inputs[SOURCE_ARTIFACT]
        info = probe(source, timeout_s=min(60.0, ctx.remaining_s()))
        container = choose_container(settings, info.format_name)
        fmt = "srt" if container == "mp4" else settings.mkv_subtitle_format
        tracks = subtitle_tracks(ctx.inputs["subtitles"], fmt)
        if not tracks:
            raise StageError(f"mux: no .{fmt} subtitle files in {ctx.inputs['subtitles']}")
        targets = ctx.job.get("target_languages") or []
        out = ctx.out_dir / f"{ctx.job['name']}.subtitled.{container}"
        run_tool(mux_args(source, tracks, container, targets[0] if targets else None, out),
                 timeout_s=ctx.remaining_s(), what=f"{source}: cannot mux subtitles")
        ctx.log.info("mux: %d subtitle track(s) -> %s", len(tracks), out.name)
        return StageResult(outputs={"video": out.name}, metrics={"tracks": len(tracks)})
