"""The whisper-asr-webservice protocol that Bazarr's Whisper provider speaks.

`POST /asr?task=transcribe|translate&language=hi&output=srt&encode=false` with the audio as
the form file `audio_file` answers the subtitle text itself; `POST /detect-language` answers
`{"detected_language": "hindi", "language_code": "hi"}`. A request's choices become job
settings here: `translate` asks our translate stage for English (Whisper's translate task is
never used), no `language` lets Whisper identify it, `vad_filter=false` turns VAD off. The
answer is rendered from the finished job: SRT and VTT are the subtitle stage's own files;
txt, json and tsv are written from the final transcript the way whisper-asr-webservice's
writers lay them out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from bolly_ray.core.languages import is_language_code, language_name
from bolly_ray.engine.manifest import Manifest
from bolly_ray.service.errors import RequestError
from bolly_ray.stages.formats.transcript import Transcript, read_transcript

E = TypeVar("E", bound=StrEnum)

TRANSLATION_TARGET = "en"
DETECT_WINDOW_S = 30.0
"""Like whisper-asr-webservice, detection listens to the first 30 s of the audio."""


class Task(StrEnum):
    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


class Output(StrEnum):
    SRT = "srt"
    VTT = "vtt"
    TXT = "txt"
    JSON = "json"
    TSV = "tsv"


MEDIA_TYPES = {Output.SRT: "text/plain", Output.VTT: "text/vtt", Output.TXT: "text/plain",
               Output.JSON: "application/json", Output.TSV: "text/tab-separated-values"}


@dataclass(frozen=True)
class AsrAsk:
    task: Task
    language: str | None
    output: Output
    encode: bool
    vad_filter: bool | None = None
    word_timestamps: bool = False

    @classmethod
    def parse(cls, task: str, language: str | None, output: str, encode: bool,
              vad_filter: bool | None = None, word_timestamps: bool = False) -> AsrAsk:
        return cls(task=_choice(Task, "task", task), language=checked_language(language),
                   output=_choice(Output, "output", output), encode=encode,
                   vad_filter=vad_filter, word_timestamps=word_timestamps)

    @property
    def result_language(self) -> str | None:
        """The language of the answer: English for translate, else the audio's own."""
        return TRANSLATION_TARGET if self.task == Task.TRANSLATE else self.language

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": "audio", "target_languages": (
            [TRANSLATION_TARGET] if self.task == Task.TRANSLATE else [])}
        if self.language:
            fields["source_language"] = self.language
        return fields

    def overrides(self) -> list[str]:
        chosen = ["mux.enabled=false"]  # an answer, not a film: nothing to mux into
        if not self.language:
            chosen.append("asr.language=auto")
        if self.vad_filter is False:
            chosen.append("vad.enabled=false")
        return chosen


def checked_language(code: str | None) -> str | None:
    if code is None or not code.strip() or code.strip().lower() == "auto":
        return None
    code = code.strip().lower()
    if not is_language_code(code):
        raise RequestError(f"unknown language {code!r}: give a language code such as hi or en")
    return code


def _choice(kind: type[E], name: str, value: str) -> E:
    try:
        return kind(value.strip().lower())
    except ValueError:
        allowed = "|".join(k.value for k in kind)
        raise RequestError(f"unknown {name} {value!r} ({allowed})") from None


def detection_answer(language: str) -> dict[str, str]:
    return {"detected_language": language_name(language).lower(), "language_code": language}


# -- answers from a finished job ------------------------------------------------------------

def render(job_dir: Path, ask: AsrAsk) -> str:
    language = ask.result_language or transcript_of(job_dir, None).language
    if ask.output in (Output.SRT, Output.VTT):
        return subtitle_file(job_dir, language, ask.output.value).read_text(encoding="utf-8")
    transcript = transcript_of(job_dir, language)
    if ask.output == Output.TXT:
        return "".join(segment.text.strip() + "\n" for segment in transcript.segments)
    if ask.output == Output.TSV:
        return "start\tend\ttext\n" + "".join(
            f"{round(s.start * 1000)}\t{round(s.end * 1000)}\t{s.text.strip()}\n"
            for s in transcript.segments)
    return json.dumps(whisper_json(transcript, ask.word_timestamps), ensure_ascii=False)


def subtitle_file(job_dir: Path, language: str, extension: str) -> Path:
    found = sorted((job_dir / "subtitles").glob(f"*.{language}.{extension}"))
    if not found:
        raise FileNotFoundError(f"{job_dir.name}: no {language} {extension} subtitles")
    return found[0]


def transcript_of(job_dir: Path, language: str | None) -> Transcript:
    """The final transcript, or its translation into `language`."""
    stages = Manifest.read(job_dir / "manifest.json").stages
    outputs = {name: record.path for stage in stages.values()
               for name, record in stage.outputs.items()}
    source = read_transcript(job_dir / outputs["transcript"])
    if language is None or source.language == language or "translations" not in outputs:
        return source
    return read_transcript(job_dir / outputs["translations"] / f"{language}.json")


def whisper_json(transcript: Transcript, words: bool) -> dict[str, Any]:
    segments = []
    for number, segment in enumerate(transcript.segments):
        entry: dict[str, Any] = {"id": number, "start": segment.start, "end": segment.end,
                                 "text": segment.text}
        if words:
            entry["words"] = [{"word": w.text, "start": w.start, "end": w.end,
                               "probability": w.confidence} for w in segment.words]
        segments.append(entry)
    return {"text": " ".join(s.text.strip() for s in transcript.segments),
            "segments": segments, "language": transcript.language}
