"""Text as stages compare it: lower case, words only (letters, digits, apostrophes), single
spaces; the hallucination filter and the lyrics stage match lines this way.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[\w']+")


def normalise(text: str) -> str:
    """Lower case and words only, so punctuation and spacing never decide a match."""
    return " ".join(WORD.findall(text.lower()))
