"""The glossary artifact: the names and terms a film's subtitles must get right, each with its
preferred spelling, alternatives, notes and where it came from (film, team, TMDB cast or
character, the starter list). The glossary stage writes it; ASR, name correction,
transliteration, translation and speaker naming read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bolly_ray.errors import StageError

Source = Literal["film", "global", "cast", "character", "starter"]
PLAYED_BY = "played by "  # a character term's notes: who plays it (the voice bank reads it)


class Term(BaseModel):
    model_config = ConfigDict(extra="forbid")

    term: str
    preferred: str
    alternatives: list[str] = Field(default_factory=list)
    notes: str = ""
    source: Source
    is_name: bool = False


class Glossary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    terms: list[Term] = Field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> Glossary:
        try:
            return cls.model_validate_json(path.read_bytes())
        except (OSError, ValueError) as err:
            raise StageError(f"{path}: not a glossary ({type(err).__name__})") from None

    def names(self) -> list[Term]:
        return [t for t in self.terms if t.is_name]

    def hotwords(self, limit: int) -> list[str]:
        """Names first (they matter most and Whisper knows them least), then terms."""
        ordered = sorted(self.terms, key=lambda t: not t.is_name)
        return list(dict.fromkeys(t.preferred for t in ordered))[:limit]
