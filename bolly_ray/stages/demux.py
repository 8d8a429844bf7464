"""demux: the film's dialogue track as 16 kHz mono PCM WAV, aligned to the film's clock.

It chooses the audio stream (an explicit index or language tag, else the stream in the job's
source language, else the container's default, else the first), decodes it with ffmpeg and
pads the start with silence when the stream begins after the film does, so every timestamp
downstream matches the video. A `media.json` beside the WAV records what was chosen.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

from pydantic import Field

from bolly_ray.core.languages import iso639_2, same_language
from bolly_ray.errors import MediaError, UsageError
from bolly_ray.spec import (
    SOURCE_ARTIFACT,
    Locality,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSettings,
    StageSpec,
)
from bolly_ray.stages.support.media import AudioStream, MediaInfo, ffmpeg_input, probe, run_tool

SAMPLE_RATE = 16_000


class DemuxSettings(StageSettings):
    audio_stream: int | None = Field(
        default=None, ge=0,
        description="Audio stream to use, counted among audio streams (0 = first)")
    audio_language: str | None = Field(
        default=None,
        description="Use the audio stream tagged with this language (hi, hin, eng...)")
    prefer_source_language: bool = Field(
        default=True, description="Without an explicit choice, prefer the job's source language")


def choose_stream(info: MediaInfo, settings: DemuxSettings, source_language: str | None
                  ) -> AudioStream:
    streams = info.audio
    if settings.audio_stream is not None:
        if settings.audio_stream >= len(streams):
            raise UsageError(f"{info.path}: demux.audio_stream={settings.audio_stream} but the "
                             f"file has {len(streams)} audio stream(s)")
        return streams[settings.audio_stream]
    if settings.audio_language:
        for stream in streams:
            if same_language(stream.language, settings.audio_language):
                return stream
        tags = ", ".join(s.language or "untagged" for s in streams)
        raise UsageError(f"{info.path}: no audio stream in {settings.audio_language!r} "
                         f"(streams: {tags})")
    if settings.prefer_source_language:
        for stream in streams:
            if same_language(stream.language, source_language):
                return stream
    return next((s for s in streams if s.default), streams[0])


def demux_args(info: MediaInfo, stream: AudioStream, out: Path) -> list[str]:
    # aresample=async pads with silence from the film's time zero, which honours a late start
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
            "-i", ffmpeg_input(info.path), "-map", f"0:{stream.index}", "-vn", "-sn", "-dn",
            "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", str(SAMPLE_RATE),
            "-c:a", "pcm_s16le", "-map_metadata", "-1", "-fflags", "+bitexact",
            "-flags:a", "+bitexact", "-f", "wav", "file:" + str(out)]


def wav_duration(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


class DemuxStage(Stage[DemuxSettings]):
    spec = StageSpec(
        name="demux", inputs=(SOURCE_ARTIFACT,), outputs=("audio", "media_info"),
        settings_model=DemuxSettings, job_fields=("source_language",),
        resources=Resources(cpus=1, memory_mb=512), locality=Locality.SOURCE,
        image_tools=("ffmpeg",),
        timeout_s=3 * 3600, version="1")

    def run(self, ctx: StageContext[DemuxSettings], model: object = None) -> StageResult:
        settings = ctx.settings
        source = ctx.inputs[SOURCE_ARTIFACT]
        info = probe(source, timeout_s=min(60.0, ctx.remaining_s()))
        stream = choose_stream(info, settings, ctx.job.get("source_language"))
        audio = ctx.out_dir / "audio.wav"
        run_tool(demux_args(info, stream, audio), timeout_s=ctx.remaining_s(),
                 what=f"{source}: cannot decode audio stream {stream.order}")
        seconds = wav_duration(audio)
        if seconds <= 0:
            raise MediaError(f"{source}: audio stream {stream.order} decodes to no samples")
        ctx.log.info("demux: %s stream %d (%s) -> %.2f s", source.name, stream.order,
                     stream.language or "untagged", seconds)
        (ctx.out_dir / "media.json").write_text(_media_json(info, stream, seconds))
        return StageResult(outputs={"audio": "audio.wav", "media_info": "media.json"},
                           metrics={"audio_s": round(seconds, 3)})


def _media_json(info: MediaInfo, stream: AudioStream, seconds: float) -> str:
    data = {
        "source_name": info.path.name, "format": info.format_name,
        "duration_s": info.duration, "start_time_s": info.start_time,
        "video_streams": info.video_streams, "audio_streams": len(info.audio),
        "chosen_audio": {"order": stream.order, "index": stream.index, "codec": stream.codec,
                         "language": iso639_2(stream.language) if stream.language else None,
                         "title": stream.title, "start_time_s": stream.start_time},
        "wav": {"sample_rate": SAMPLE_RATE, "channels": 1, "duration_s": round(seconds, 6)},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
