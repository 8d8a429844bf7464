"""The transcript exchanged between speech stages and the subtitle writer.

A transcript is a list of timed segments, each with optional word timings, a speaker label
and an `is_lyric` flag. It is the one data shape that ASR, alignment, diarization, the
filters and the subtitle stage agree on, so it lives here as a strict pydantic model that
every stage validates when it reads a transcript file (`read_transcript`: a bad file is a
one-line error naming it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bolly_ray.errors import StageError


class Word(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    start: float = Field(ge=0)
    end: float = Field(ge=0)
    speaker: str | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Word:
        if self.end < self.start:
            raise ValueError(f"word {self.text!r} ends ({self.end}) before it starts "
                             f"({self.start})")
        return self


class Segment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: float = Field(ge=0)
    end: float = Field(ge=0)
    text: str
    words: list[Word] = Field(default_factory=list)
    speaker: str | None = None
    is_lyric: bool = False
    confidence: float | None = Field(default=None, ge=0, le=1)
    avg_logprob: float | None = None
    """The recogniser's mean token log-probability (for hallucination filtering)."""
    compression_ratio: float | None = Field(default=None, ge=0)
    no_speech_prob: float | None = Field(default=None, ge=0, le=1)
    language: str | None = None
    """The language the segment was decoded in, where asr identified it (`mixed`, `auto`)."""
    language_probability: float | None = Field(default=None, ge=0, le=1)
    """How sure Whisper was of that language, for the region the segment lies in."""

    @model_validator(mode="after")
    def _ordered(self) -> Segment:
        if self.end < self.start:
            raise ValueError(f"segment ends ({self.end}) before it starts ({self.start})")
        return self


class Alignment(BaseModel):
    """Where the word timings came from, and why when it was not the aligner."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["wav2vec2", "asr", "estimated"]
    """wav2vec2 forced alignment; the recogniser's own timings; spread over the segment."""
    model: str | None = None
    reason: str | None = None


class Transcript(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str
    segments: list[Segment] = Field(default_factory=list)
    alignment: Alignment | None = None
    speakers: list[str] | None = None
    """Speaker labels found by diarization; None when the transcript was not diarized."""

    @classmethod
    def read(cls, path: Path) -> Transcript:
        return cls.model_validate_json(path.read_bytes())

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


def read_transcript(path: Path) -> Transcript:
    """The transcript at `path`, or a one-line `StageError` naming the file and the problem."""
    try:
        return Transcript.read(path)
    except ValidationError as error:
        raise StageError(f"{path}: not a valid transcript: {_first_problem(error)}") from None
    except OSError as error:
        raise StageError(f"{path}: cannot read the transcript: {error.strerror or error}"
                         ) from None


class ChecksTranscriptInputs:
    """For stages that read transcripts: one the job brings is validated in the preflight."""

    def check_input(self, artifact: str, path: Path) -> str | None:
        if not artifact.endswith("transcript"):
            return None
        try:
            read_transcript(path)
        except StageError as err:
            return str(err)
        return None


def _first_problem(error: ValidationError) -> str:
    problems = error.errors()
    where = ".".join(str(part) for part in problems[0]["loc"])
    message = f"{where}: {problems[0]['msg']}" if where else problems[0]["msg"]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return " ".join(f"{message}{more}".split())
