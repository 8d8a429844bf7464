"""glossary: the names and terms a film's subtitles must get right, from every source at once.

Sources, in order of precedence: the film's own glossary (`artifacts.film_glossary`), a
team-wide one (`artifacts.global_glossary`), the cast and character names TMDB returned,
and the Hinglish starter list shipped with bolly-ray (yaar, ji, beta, bhai, ...). Glossary
files are TSV with the columns term, preferred, alternatives (separated by |) and notes;
lines starting with # are comments. ASR gets the names and terms as hotwords, name
correction matches against them, and translation keeps them as they are.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
from typing import Any

from pydantic import Field

from bolly_ray.errors import StageError
from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.formats.glossary import PLAYED_BY, Glossary, Source, Term


class GlossarySettings(StageSettings):
    starter: bool = Field(default=True, description="Include the Hinglish starter list")
    cast_names: bool = Field(default=True, description="Include actors' names from TMDB")
    character_names: bool = Field(default=True, description="Include characters from TMDB")
    max_cast: int = Field(default=30, ge=0, le=500, description="Actors taken, by billing")


class GlossaryStage(Stage[GlossarySettings]):
    spec = StageSpec(
        name="glossary", inputs=(),
        optional_inputs=("film_metadata", "film_glossary", "global_glossary"),
        outputs=("glossary",), settings_model=GlossarySettings,
        resources=Resources(cpus=0.25, memory_mb=256), version="1")

    def run(self, ctx: StageContext[GlossarySettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        terms: list[Term] = []
        own: tuple[tuple[str, Source], ...] = (("film_glossary", "film"),
                                               ("global_glossary", "global"))
        for artifact, source in own:
            if artifact in ctx.inputs:
                terms += read_tsv(ctx.inputs[artifact].read_text(encoding="utf-8"), source,
                                  str(ctx.inputs[artifact]))
        if "film_metadata" in ctx.inputs:
            terms += cast_terms(json.loads(ctx.inputs["film_metadata"].read_text()), settings)
        if settings.starter:
            starter = importlib.resources.files("bolly_ray.stages") / "data" / "hinglish.tsv"
            terms += read_tsv(starter.read_text(encoding="utf-8"), "starter", "starter list")
        glossary = Glossary(terms=deduplicate(terms))
        (ctx.out_dir / "glossary.json").write_text(glossary.model_dump_json(indent=2) + "\n",
                                                   encoding="utf-8")
        return StageResult(outputs={"glossary": "glossary.json"}, metrics={
            "terms": len(glossary.terms), "names": len(glossary.names())})


def read_tsv(text: str, source: Source, where: str) -> list[Term]:
    rows = [row for row in csv.reader(io.StringIO(text), delimiter="\t")
            if row and not row[0].lstrip().startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["term", "preferred"]:
        rows = rows[1:]
    terms = []
    for number, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row] + [""] * 4
        if not cells[0]:
            raise StageError(f"{where}: entry {number} has no term")
        terms.append(Term(term=cells[0], preferred=cells[1] or cells[0],
                          alternatives=[a.strip() for a in cells[2].split("|") if a.strip()],
                          notes=cells[3], source=source,
                          is_name=source in ("film", "global") and cells[0][:1].isupper()))
    return terms


def cast_terms(film: dict[str, Any], settings: GlossarySettings) -> list[Term]:
    terms = []
    for member in film.get("cast", [])[:settings.max_cast]:
        if settings.cast_names and member.get("name"):
            terms.append(Term(term=member["name"], preferred=member["name"], source="cast",
                              is_name=True, notes=f"actor: {member.get('character') or ''}"))
        for character in split_characters(member.get("character")):
            if settings.character_names:
                terms.append(Term(term=character, preferred=character, source="character",
                                  is_name=True, notes=f"{PLAYED_BY}{member.get('name')}"))
    return terms


def split_characters(text: str | None) -> list[str]:
    """TMDB's "Raj Malhotra / Rahul (voice)" as ["Raj Malhotra", "Rahul"]."""
    names = []
    for part in (text or "").replace(" and ", "/").split("/"):
        name = part.split("(")[0].strip().strip('"')
        if name and name.lower() not in ("himself", "herself", "self", "narrator"):
            names.append(name)
    return names


def deduplicate(terms: list[Term]) -> list[Term]:
    """One entry per term (case-insensitive); the earlier source wins."""
    seen: dict[str, Term] = {}
    for term in terms:
        seen.setdefault(term.term.casefold(), term)
    return list(seen.values())
