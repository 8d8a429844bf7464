"""Protected terms as numbered placeholders, so a rewrite of the text cannot touch them.

Before a model translates a segment (or a transliterator rewrites its script), each glossary
term found in it becomes `[1]`, `[2]`, ...; afterwards the placeholders are put back, as the
term was written or as the glossary spells it. A term is found only as a whole word: a
letter, digit or combining mark (a Devanagari vowel sign) next to it means it is part of a
longer word ("राज" is not in "राजा").
"""

from __future__ import annotations

import re
import unicodedata

PLACEHOLDER = re.compile(r"\[\s*(\d+)\s*\]")


def mask(text: str, terms: list[str]) -> tuple[str, dict[int, str]]:
    """The text with each protected term replaced by `[n]`, and n -> the term as found."""
    found: dict[int, str] = {}
    for term in terms:
        pattern = re.compile(re.escape(term), re.IGNORECASE)

        def keep(match: re.Match[str]) -> str:
            if not whole_word(match):
                return match.group(0)
            found[len(found) + 1] = match.group(0)
            return f"[{len(found)}]"

        text = pattern.sub(keep, text)
    return text, found


def unmask(text: str, found: dict[int, str]) -> tuple[str, int]:
    """Placeholders back to their terms; terms whose placeholder the model lost are appended.
    Returns the text and how many were lost."""
    seen: set[int] = set()

    def restore(match: re.Match[str]) -> str:
        number = int(match.group(1))
        if number in found:
            seen.add(number)
            return found[number]
        return ""

    text = PLACEHOLDER.sub(restore, text)
    lost = [found[n] for n in sorted(found) if n not in seen]
    return " ".join([text.strip(), *lost]).strip(), len(lost)


def whole_word(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    return not (start > 0 and word_char(text[start - 1])) and not (
        end < len(text) and word_char(text[end]))


def word_char(char: str) -> bool:
    return char.isalnum() or char == "_" or unicodedata.category(char).startswith("M")
