"""Language codes: the job speaks BCP 47 ("hi", "hi-Latn"), containers speak ISO 639-2 ("hin").

Matroska and MP4 tag tracks with ISO 639-2 bibliographic codes (German is "ger", not
"deu"); ffprobe reports whatever the file says. A script subtag names a second way of
writing a language: `hi-Latn` is Hindi in Roman script, made by transliterating Hindi, and
shares its container code (`hin`) with `hi`, so its track title says the script. These
helpers convert and compare through pycountry's ISO 639-3 and ISO 15924 tables.
"""

from __future__ import annotations

from functools import cache

import pycountry

UNDETERMINED = "und"
TRANSLITERATIONS = {"hi-Latn": "hi"}
"""Tags whose text is the other language's, transliterated: made without a translation model."""


@cache
def _lookup(code: str) -> object | None:
    base = code.split("-")[0].lower()
    if len(base) == 2:
        return pycountry.languages.get(alpha_2=base)
    return (pycountry.languages.get(alpha_3=base)
            or next((lang for lang in pycountry.languages
                     if getattr(lang, "bibliographic", None) == base), None))


def iso639_2(code: str | None) -> str:
    """The container tag for a language code ("hi" -> "hin", "de" -> "ger")."""
    lang = _lookup(code) if code else None
    if lang is None:
        return UNDETERMINED
    tag = getattr(lang, "bibliographic", None) or lang.alpha_3  # type: ignore[attr-defined]
    return str(tag)


def is_language_code(code: str) -> bool:
    """An ISO 639 code (two or three letters) of a known language, optionally with subtags."""
    return bool(code) and _lookup(code) is not None


def language_name(code: str | None) -> str:
    lang = _lookup(code) if code else None
    return lang.name if lang is not None else (code or "Unknown")  # type: ignore[attr-defined]


def same_language(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return iso639_2(a) == iso639_2(b) != UNDETERMINED


def canonical_tag(tag: str) -> str:
    """BCP 47's usual case: "HI-latn" -> "hi-Latn", "pt-br" -> "pt-BR"."""
    first, *rest = tag.split("-")
    subtags = [first.lower()]
    for part in rest:
        subtags.append(part.title() if len(part) == 4 else
                       part.upper() if len(part) == 2 else part.lower())
    return "-".join(subtags)


def same_tag(a: str | None, b: str | None) -> bool:
    return bool(a and b) and canonical_tag(a or "") == canonical_tag(b or "")


def transliterated_from(tag: str) -> str | None:
    """The language whose text, transliterated, gives `tag` ("hi-Latn" -> "hi"), or None."""
    return TRANSLITERATIONS.get(canonical_tag(tag))


def script_name(tag: str) -> str | None:
    """The script a tag's script subtag names ("hi-Latn" -> "Latin"), or None."""
    subtag = next((p for p in tag.split("-")[1:] if len(p) == 4 and p.isalpha()), None)
    script = pycountry.scripts.get(alpha_4=subtag.title()) if subtag else None
    return script.name.split(" (")[0] if script is not None else None


def track_title(tag: str | None) -> str:
    """A track's title: the language's name, with the script where the tag names one
    ("hi-Latn" -> "Hindi (Latin script)")."""
    script = script_name(tag) if tag else None
    return f"{language_name(tag)} ({script} script)" if script else language_name(tag)
