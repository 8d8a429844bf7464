"""Language codes: the job speaks ISO 639-1 ("hi"), containers speak ISO 639-2 ("hin").

Matroska and MP4 tag tracks with ISO 639-2 bibliographic codes (German is "ger", not
"deu"); ffprobe reports whatever the file says. These helpers convert and compare through
pycountry's ISO 639-3 tables.
"""

from __future__ import annotations

from functools import cache

import pycountry

UNDETERMINED = "und"


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
    return getattr(lang, "bibliographic", None) or lang.alpha_3  # type: ignore[attr-defined]


def language_name(code: str | None) -> str:
    lang = _lookup(code) if code else None
    return lang.name if lang is not None else (code or "Unknown")  # type: ignore[attr-defined]


def same_language(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return iso639_2(a) == iso639_2(b) != UNDETERMINED
