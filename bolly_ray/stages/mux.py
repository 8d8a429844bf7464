"""mux: the film with soft subtitle tracks, one per language, video and audio copied.

MKV carries SRT or ASS tracks, MP4 carries mov_text (converted from SRT). Tracks come in the
order of the job's target languages, are tagged with ISO 639-2 codes and titled with the
language's name and, for a second script, the script ("Hindi (Latin script)" for `hi-Latn`,
whose code is `hin` like Hindi's); MKV tracks also carry the full BCP 47 tag in a
`LANGUAGE_BCP47` tag (ffmpeg 5.1 writes neither Matroska's LanguageBCP47 element nor MP4's
elng box), MP4 tracks the title as their handler name. The first target language, when
present, is the default track. A language whose file holds no cue (a film nobody speaks in, or
all of it filtered) gets no track, with a warning; when none holds one, mux fails and says
so. Nothing is re-encoded, and bit-exact flags keep the output byte-identical from run to
run.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import pysubs2
from pydantic import Field

from bolly_ray.core.languages import canonical_tag, iso639_2, same_language, same_tag, track_title
from bolly_ray.errors import StageError
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
from bolly_ray.stages.support.media import ffmpeg_input, probe, run_tool

MP4_FORMATS = ("mov", "mp4", "m4a", "3gp")
BCP47_TAG = "LANGUAGE_BCP47"


class MuxSettings(OptionalStageSettings):
    container: Literal["auto", "mkv", "mp4"] = Field(
        default="auto", description="auto: MP4 for MP4/MOV sources, MKV for everything else")
    mkv_subtitle_format: Literal["srt", "ass"] = Field(
        default="srt", description="Subtitle format stored in MKV (ass keeps styling)")


def subtitle_tracks(folder: Path, fmt: str, order: list[str] | None = None
                    ) -> list[tuple[str, Path]]:
    """(language, file) for every `<name>.<lang>.<fmt>` in the subtitles folder: languages
    in `order` first, in that order, then the rest by file name."""
    tracks = []
    for path in sorted(folder.glob(f"*.{fmt}")):
        match = re.search(r"\.([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\." + fmt + "$", path.name)
        if match:
            tracks.append((match.group(1), path))
    wanted = [canonical_tag(t) for t in order or []]
    return sorted(tracks, key=lambda t: wanted.index(canonical_tag(t[0]))
                  if canonical_tag(t[0]) in wanted else len(wanted))


def has_cues(path: Path, fmt: str) -> bool:
    """Whether a subtitle file holds a cue: ffmpeg cannot read an SRT that holds none, and
    an empty track helps no viewer."""
    return len(pysubs2.load(str(path), format_=fmt)) > 0


def default_track(tracks: list[tuple[str, Path]], language: str | None) -> int | None:
    """The track for `language`: its own tag first ("hi-Latn"), else the same language."""
    for matches in (same_tag, same_language):
        found = next((n for n, (lang, _) in enumerate(tracks) if matches(lang, language)),
                     None)
        if found is not None:
            return found
    return None


def track_metadata(n: int, language: str, container: str) -> list[str]:
    title = track_title(language)
    named = ["handler_name=" + title] if container == "mp4" else [
        "title=" + title, f"{BCP47_TAG}={canonical_tag(language)}"]
    return [arg for tag in [f"language={iso639_2(language)}", *named]
            for arg in (f"-metadata:s:s:{n}", tag)]


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
    default = default_track(tracks, default_language)
    for n, (language, _) in enumerate(tracks):
        args += [*track_metadata(n, language, container),
                 f"-disposition:s:{n}", "default" if n == default else "0"]
    args += ["-map_metadata", "0", "-map_chapters", "0", "-fflags", "+bitexact",
             "-flags:v", "+bitexact", "-flags:a", "+bitexact",
             "-f", "mp4" if container == "mp4" else "matroska", "file:" + str(out)]
    return args


class MuxStage(Stage[MuxSettings]):
    spec = StageSpec(
        name="mux", inputs=(SOURCE_ARTIFACT, "subtitles"), outputs=("video",),
        settings_model=MuxSettings, job_fields=("name", "target_languages"),
        exports={"video": "."}, resources=Resources(cpus=1, memory_mb=512),
        image_tools=("ffmpeg",),
        locality=Locality.SOURCE, critical=False, timeout_s=3 * 3600, version="2")

    def run(self, ctx: StageContext[MuxSettings], model: object = None) -> StageResult:
        settings = ctx.settings
        source = ctx.inputs[SOURCE_ARTIFACT]
        info = probe(source, timeout_s=min(60.0, ctx.remaining_s()))
        container = choose_container(settings, info.format_name)
        fmt = "srt" if container == "mp4" else settings.mkv_subtitle_format
        targets = ctx.job.get("target_languages") or []
        found = subtitle_tracks(ctx.inputs["subtitles"], fmt, targets)
        if not found:
            raise StageError(f"mux: no .{fmt} subtitle files in {ctx.inputs['subtitles']}")
        tracks = [(language, path) for language, path in found if has_cues(path, fmt)]
        if not tracks:
            raise StageError(f"mux: the subtitles hold no cue in any language "
                             f"({', '.join(language for language, _ in found)}): no track "
                             "to add (the filter's report says what it removed)")
        for language, path in found:
            if (language, path) not in tracks:
                ctx.log.warning("mux: %s holds no cue; the %s track is left out", path.name,
                                language)
        out = ctx.out_dir / f"{ctx.job['name']}.subtitled.{container}"
        run_tool(mux_args(source, tracks, container, targets[0] if targets else None, out),
                 timeout_s=ctx.remaining_s(), what=f"{source}: cannot mux subtitles")
        ctx.log.info("mux: %d subtitle track(s) -> %s", len(tracks), out.name)
        return StageResult(outputs={"video": out.name}, metrics={
            "tracks": len(tracks), "empty_tracks_left_out": len(found) - len(tracks)})
