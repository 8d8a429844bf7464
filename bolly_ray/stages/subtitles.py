"""subtitles: the final transcript, and each translation, as SRT, WebVTT and ASS files.

The stage reads the transcript artifact, lets `subtitle_layout.build_cues` cut it into cues
(line length, line count, reading speed, duration and gap limits, ♪ around lyrics, optional
speaker labels) and writes one file per requested format into `subtitles/` as
`<name>.<lang>.<ext>` (the source language and every translation), each through one
pysubs2 document: ASS gets a 1920x1080 script with a Default and a Lyrics style, SRT and
VTT get lyric italics as `<i>` tags; a dialogue cue's ASS Name is "A & B". Cue times sit on a
centisecond grid, so all three formats carry identical timings, and output is byte-identical
for the same input and settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pysubs2
from pydantic import Field, field_validator, model_validator

from bolly_ray.errors import StageError
from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.formats.transcript import ChecksTranscriptInputs, Transcript, read_transcript
from bolly_ray.stages.subtitle_layout import Cue, LayoutRules, SpeakerLabels, build_cues

SubtitleFormat = Literal["srt", "vtt", "ass"]
ALL_FORMATS: tuple[SubtitleFormat, ...] = ("srt", "vtt", "ass")
OUTPUT_DIR = "subtitles"
PLAY_RES = (1920, 1080)
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")  # as in the job file
# Braces and backslashes open override tags in ASS, and pysubs2 reads SRT/VTT text the same way.
ASS_SAFE = str.maketrans({"{": "(", "}": ")", "\\": "/"})


class SubtitleSettings(StageSettings):
    max_chars_per_line: int = Field(
        default=42, ge=16, le=100, description="Most characters on one line, labels and ♪ included")
    max_lines: int = Field(default=2, ge=1, le=3, description="Most lines in one cue")
    max_cps: float = Field(
        default=17.0, ge=5.0, le=60.0,
        description="Highest reading speed, characters (spaces included) per second")
    min_duration_s: float = Field(
        default=5 / 6, ge=0.1, le=10.0,
        description="Shortest time a cue stays up, when the next cue leaves room")
    max_duration_s: float = Field(
        default=7.0, ge=1.0, le=20.0, description="Longest time a cue stays up")
    min_gap_frames: int = Field(
        default=2, ge=0, le=50, description="Frames of blank screen between consecutive cues")
    frame_rate: float = Field(
        default=25.0, ge=10.0, le=120.0, description="Frame rate the gap is counted in")
    speaker_labels: SpeakerLabels = Field(
        default="dash", description="How speakers show: none (two speakers never share a "
        "cue), dash (a two-speaker dialogue cue's lines open with \"- \"), or name (also "
        "[NAME], the character's where the speakers stage found it, whenever the speaker "
        "changes)")
    lyric_marker: str = Field(
        default="♪", max_length=4, pattern=r"^[^\s{}\\]*$",
        description="Mark set around sung lines; empty for none")
    italic_lyrics: bool = Field(default=True, description="Show sung lines in italics (SRT, ASS)")
    formats: list[SubtitleFormat] = Field(
        default_factory=lambda: list(ALL_FORMATS), min_length=1,
        description="Files to write")
    font_name: str = Field(default="Arial", min_length=1, description="ASS font")
    font_size: int = Field(default=48, ge=8, le=200, description="ASS font size at 1080 lines")
    outline: float = Field(default=2.0, ge=0.0, le=10.0, description="ASS outline width")
    margin_v: int = Field(default=40, ge=0, le=500, description="ASS bottom margin in pixels")

    @field_validator("speaker_labels", mode="before")
    @classmethod
    def _labels_were_a_switch(cls, value: object) -> object:
        """Job files written before the three choices said true or false."""
        if isinstance(value, bool):
            return "name" if value else "dash"
        return value

    @field_validator("formats")
    @classmethod
    def _unique(cls, value: list[SubtitleFormat]) -> list[SubtitleFormat]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _durations(self) -> SubtitleSettings:
        if self.min_duration_s > self.max_duration_s:
            raise ValueError(f"min_duration_s ({self.min_duration_s}) is above "
                             f"max_duration_s ({self.max_duration_s})")
        return self

    def layout_rules(self) -> LayoutRules:
        return LayoutRules(
            max_chars_per_line=self.max_chars_per_line, max_lines=self.max_lines,
            max_cps=self.max_cps, min_duration_s=self.min_duration_s,
            max_duration_s=self.max_duration_s, min_gap_frames=self.min_gap_frames,
            frame_rate=self.frame_rate, speaker_labels=self.speaker_labels,
            lyric_marker=self.lyric_marker)


class SubtitlesStage(ChecksTranscriptInputs, Stage[SubtitleSettings]):
    spec = StageSpec(
        name="subtitles",
        inputs=("transcript",),
        optional_inputs=("translations",),
        outputs=("subtitles",),
        settings_model=SubtitleSettings,
        job_fields=("name", "source_language"),
        exports={"subtitles": "subtitles"},
        resources=Resources(cpus=1, memory_mb=512),
        version="2",  # 2: reading speed a hard limit, dialogue cues
    )

    def run(self, ctx: StageContext[SubtitleSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["transcript"])
        language = transcript_language(transcript, ctx.job.get("source_language"))
        versions = [(language, transcript), *translated(ctx.inputs.get("translations"))]
        out = ctx.out_dir / OUTPUT_DIR
        out.mkdir(parents=True, exist_ok=True)
        cues = 0
        for lang, version in versions:
            cues += write_subtitles(version, lang, ctx.job["name"], settings, out)
        ctx.log.info("subtitles: %d language(s), %d cues in %s", len(versions), cues,
                     ", ".join(settings.formats))
        return StageResult(outputs={"subtitles": OUTPUT_DIR},
                           metrics={"cues": cues, "languages": len(versions)})


def translated(folder: Path | None) -> list[tuple[str, Transcript]]:
    """(language, transcript) for each translation the translate stage wrote."""
    if folder is None:
        return []
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name != "report.json":
            version = read_transcript(path)
            found.append((transcript_language(version, path.stem), version))
    return found


def write_subtitles(transcript: Transcript, language: str, name: str,
                    settings: SubtitleSettings, out: Path) -> int:
    """`<name>.<language>.<ext>` for every format; returns the number of cues."""
    cues = build_cues(transcript, settings.layout_rules())
    document = subtitle_document(cues, settings, title=name)
    for fmt in settings.formats:
        (out / f"{name}.{language}.{fmt}").write_text(document.to_string(fmt), encoding="utf-8",
                                                      newline="\n")
    return len(cues)


def transcript_language(transcript: Transcript, fallback: str | None) -> str:
    """The file-name language: the transcript's own, else the job's source language."""
    language = transcript.language.strip() or fallback or ""
    if not LANGUAGE_CODE.fullmatch(language):
        raise StageError(f"transcript language {language!r} is not a language code (hi, en, ...)")
    return language


def subtitle_document(cues: list[Cue], settings: SubtitleSettings, title: str) -> pysubs2.SSAFile:
    """One pysubs2 document that every output format is written from."""
    document = pysubs2.SSAFile()
    document.info = {
        "Title": title,
        "ScriptType": "v4.00+",
        "WrapStyle": "2",  # lines are already broken; the renderer must not re-wrap them
        "ScaledBorderAndShadow": "yes",
        "YCbCr Matrix": "TV.709",
        "PlayResX": str(PLAY_RES[0]),
        "PlayResY": str(PLAY_RES[1]),
    }
    document.styles = {"Default": _style(settings, italic=False),
                       "Lyrics": _style(settings, italic=settings.italic_lyrics)}
    for speaker in dict.fromkeys(style_of(cue) for cue in cues):
        document.styles.setdefault(speaker, _style(settings, italic=False))
    document.events = [_event(cue) for cue in cues]
    return document


def style_of(cue: Cue) -> str:
    """One ASS style per speaker (a character's name where the speakers stage found it), so
    an editor restyles a character at once; sung lines and dialogue cues keep theirs."""
    if cue.is_lyric:
        return "Lyrics"
    if cue.speakers or not cue.speaker:
        return "Default"
    return cue.speaker.replace(",", " ")  # a comma would shift the ASS fields


def _style(settings: SubtitleSettings, italic: bool) -> pysubs2.SSAStyle:
    return pysubs2.SSAStyle(
        fontname=settings.font_name, fontsize=float(settings.font_size), italic=italic,
        outline=settings.outline, shadow=0.0, marginv=settings.margin_v,
        alignment=pysubs2.Alignment.BOTTOM_CENTER)


def _event(cue: Cue) -> pysubs2.SSAEvent:
    return pysubs2.SSAEvent(
        start=round(cue.start * 1000), end=round(cue.end * 1000),
        text=r"\N".join(line.translate(ASS_SAFE) for line in cue.lines),
        style=style_of(cue),
        name=speaker_name(cue).replace(",", " "))  # a comma would shift the ASS fields


def speaker_name(cue: Cue) -> str:
    """The ASS Name field: the cue's speaker, or a dialogue cue's two as "A & B"."""
    return " & ".join(s or "" for s in cue.speakers) if cue.speakers else cue.speaker or ""
