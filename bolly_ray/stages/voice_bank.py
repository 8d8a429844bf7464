"""A library's voice bank: the voices of speakers its films named, so the next film of the
same actor starts with a name. Opt-in, and kept by the user, never by a running job.

The speakers stage writes each film's voices (`speaker_voices.json`: every diarized
speaker's voice embedding, its name where the film gave one, and the actor who plays that
character where the TMDB cast says). `bolly-ray voices learn` folds those files into a bank
file (one averaged voice per person: the actor where known, else the name); a job that
brings the bank (`artifacts.voice_bank`, `prepare --voice-bank`) has the speakers stage
compare each of its speakers with it. A voice within `voice_match` (cosine distance) of a
banked person is evidence for that person's character in this film's cast (or, with no
cast, for the person's name). Voices are only compared when the same speaker encoder made
them.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bolly_ray.errors import StageError, UsageError


class FilmVoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speaker: str
    """The label in the film's subtitles (a character's name, or SPEAKER_n)."""
    person: str | None = None
    """Who it is across films: the actor where the cast says, else the name; None unnamed."""
    embedding: list[float]


class FilmVoices(BaseModel):
    """speaker_voices.json: one film's speakers."""

    model_config = ConfigDict(extra="forbid")

    film: str
    model: str | None = None
    voices: list[FilmVoice] = Field(default_factory=list)


class BankedVoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedding: list[float]
    films: list[str] = Field(default_factory=list)


class VoiceBank(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    voices: dict[str, BankedVoice] = Field(default_factory=dict)


def read_bank(path: Path) -> VoiceBank:
    try:
        return VoiceBank.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as err:
        raise StageError(f"{path}: not a voice bank ({type(err).__name__})") from None


def cosine_distance(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return 1.0 - dot / norms if norms else 2.0


def nearest(bank: VoiceBank, embedding: list[float]) -> tuple[str, float] | None:
    """The banked person whose voice is nearest, and how near (cosine distance)."""
    scored = [(person, cosine_distance(voice.embedding, embedding))
              for person, voice in bank.voices.items()]
    return min(scored, key=lambda pair: pair[1]) if scored else None


def learn(bank: VoiceBank | None, film: FilmVoices) -> tuple[VoiceBank, list[str]]:
    """The bank with this film's named voices folded in (each person's voice the mean over
    the films it was heard in, one vote per film), and the persons it learnt."""
    if bank is not None and film.model != bank.model:
        raise UsageError(f"{film.film}: voices from {film.model!r}, the bank holds "
                         f"{bank.model!r}: a bank keeps one speaker encoder's voices")
    bank = bank or VoiceBank(model=film.model or "unknown")
    learnt = []
    for voice in film.voices:
        if voice.person is None:
            continue
        known = bank.voices.get(voice.person)
        if known is None:
            bank.voices[voice.person] = BankedVoice(embedding=voice.embedding, films=[film.film])
        elif film.film not in known.films:
            count = len(known.films)
            mean = [(k * count + v) / (count + 1)
                    for k, v in zip(known.embedding, voice.embedding, strict=True)]
            bank.voices[voice.person] = BankedVoice(embedding=unit(mean),
                                                    films=[*known.films, film.film])
        learnt.append(voice.person)
    return bank, learnt


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [round(x / norm, 5) for x in vector]
