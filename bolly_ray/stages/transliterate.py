"""Hindi in Roman script (`hi-Latn`) from Devanagari, with the glossary's spellings for names.

Aksharamukha turns each Devanagari word into colloquial Roman spelling (its
`RomanColloquial` target, with Hindi schwa deletion and nasals as "n": कमल -> kamal,
मैं -> main); text already in Latin script (English in a Hinglish line) is left exactly as
it is. Glossary entries keep their canonical spelling: a run of up to four Devanagari words
whose romanisation meets a glossary spelling under the name-matching key of `ner`
(शाहरुख़ ख़ान -> "shahrukh khan" ~ "Shah Rukh Khan") is masked with the same placeholders
translation uses and comes back as the glossary writes it. Sentences that began in
Devanagari begin with a capital. docs/ARCHITECTURE.md ("Two scripts") has the measured
comparison that chose the library.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from bolly_ray.stages.formats.glossary import Glossary, Term
from bolly_ray.stages.formats.transcript import Transcript
from bolly_ray.stages.ner import romanised
from bolly_ray.stages.protect import mask, unmask

DEVANAGARI_WORD = re.compile(r"[\u0900-\u0963\u0966-\u097F\uA8E0-\uA8FF]+")
DANDA = re.compile(r"[\u0964\u0965]")
SENTENCE_END = re.compile(r"(?<=[.?!\u0964\u0965])\s+")
# zero-width (non-)joiners shape Devanagari conjuncts and mean nothing in Latin script
JOINERS = re.compile(r"(?<=[\u0900-\u097F])[\u200c\u200d]")
LONGEST_NAME = 4  # words
# Hindi speech, not Sanskrit spelling: ग़ is the "gh" of gham, ज्ञ the "gy" of gyaan; and
# Hinglish as it is typed: ड़ and ढ़ as d and dh (ladki, padhai, not larki), ए after a
# vowel as ye (liye, gaye, not lie, gae)
HINDI_SOUNDS = (("\u095a", "घ"), ("ग\u093c", "घ"), ("ज्ञ", "ग्य"),
                ("\u095c", "ड"), ("ड\u093c", "ड"), ("\u095d", "ढ"), ("ढ\u093c", "ढ"))
VOWEL_THEN_E = re.compile(r"(?<=[\u0906\u093e\u093f\u0915-\u0939])ए")
# the few words whose usual Hinglish spelling no letter rule gives ("men" reads as English)
HINGLISH_WORDS = {"में": "mein", "मैंने": "maine"}


def romanise_word(word: str) -> str:
    """One Devanagari word in colloquial Roman spelling, lower case."""
    if word in HINGLISH_WORDS:
        return HINGLISH_WORDS[word]
    for written, spoken in HINDI_SOUNDS:
        word = word.replace(written, spoken)
    return _aksharamukha(VOWEL_THEN_E.sub("ये", word)).replace("chchh", "chh")


@functools.lru_cache(maxsize=1 << 16)
def _aksharamukha(word: str) -> str:
    from aksharamukha import transliterate  # imported here: only the translate image has it

    return str(transliterate.process("Devanagari", "RomanColloquial", word,
                                     pre_options=["RemoveSchwaHindi"],
                                     post_options=["AnusvaraAsN"]))


@dataclass(frozen=True)
class NameLexicon:
    """Glossary spellings by matching key, and spellings written in Devanagari."""

    by_key: dict[str, str] = field(default_factory=dict)
    devanagari: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_glossary(cls, glossary: Path | None, protect: str) -> NameLexicon:
        """Names (`protect` names), or names and terms (`all`), as `translate.protect` says."""
        if glossary is None or protect == "none":
            return cls()
        terms = Glossary.read(glossary).terms
        chosen = [t for t in sorted(terms, key=lambda t: not t.is_name)
                  if protect == "all" or t.is_name]
        by_key: dict[str, str] = {}
        devanagari: dict[str, str] = {}
        for term in chosen:
            for spelling, preferred in spellings_of(term):
                if DEVANAGARI_WORD.search(spelling):
                    devanagari.setdefault(spelling, preferred)
                for key in keys_of(spelling):
                    by_key.setdefault(key, preferred)
        return cls(by_key, devanagari)

    def found_in(self, text: str) -> dict[str, str]:
        """Devanagari spans of `text` that are glossary entries -> the glossary's spelling."""
        found = {s: p for s, p in self.devanagari.items() if s in text}
        words = list(DEVANAGARI_WORD.finditer(text)) if self.by_key else []
        start = 0
        while start < len(words):
            count, preferred = self.name_at(text, words[start:start + LONGEST_NAME])
            if preferred:
                found[text[words[start].start():words[start + count - 1].end()]] = preferred
            start += count
        return found

    def name_at(self, text: str, words: list[re.Match[str]]) -> tuple[int, str | None]:
        """The longest run of the first `words` that is a glossary entry: (its length, the
        glossary's spelling), or (1, None)."""
        for count in range(len(words), 0, -1):
            run = words[:count]
            if any(text[a.end():b.start()].strip() for a, b in itertools.pairwise(run)):
                continue  # a name does not run across punctuation
            key = romanised("".join(romanise_word(w.group()) for w in run))
            if key in self.by_key:
                return count, self.by_key[key]
        return 1, None


def spellings_of(term: Term) -> list[tuple[str, str]]:
    """(spelling, preferred) for every spelling of a term, and for a long name its parts
    ("Raj" for "Raj Malhotra"), as name correction matches them."""
    found = [(s, term.preferred) for s in (term.preferred, term.term, *term.alternatives)]
    if term.is_name:
        found += [(p, p) for p in term.preferred.split() if len(p) >= 3 and p[0].isupper()]
    return found


def keys_of(spelling: str) -> set[str]:
    """Matching keys of a Latin spelling, also without word-final e (Padukone, पादुकोण)."""
    if DEVANAGARI_WORD.search(spelling):
        return set()
    bare = " ".join(w[:-1] if len(w) > 3 and w.endswith("e") else w for w in spelling.split())
    return {k for k in (romanised(spelling), romanised(bare)) if k}


def transliterate_text(text: str, lexicon: NameLexicon) -> str:
    """Devanagari in Roman script, Latin text as it was, glossary entries as spelt there."""
    text = JOINERS.sub("", text)
    names = lexicon.found_in(text)
    masked, found = mask(text, sorted(names, key=len, reverse=True))
    roman = DEVANAGARI_WORD.sub(lambda m: romanise_word(m.group()), DANDA.sub(".", masked))
    restored, _ = unmask(roman, {n: names[term] for n, term in found.items()})
    return sentence_case(restored, text)


def sentence_case(roman: str, source: str) -> str:
    """A capital for each sentence that began with a Devanagari word in the source."""
    parts, sources = SENTENCE_END.split(roman), SENTENCE_END.split(source)
    if len(parts) != len(sources):
        return roman
    cased = []
    for part, was in zip(parts, sources, strict=True):
        first = re.search(r"\w", was)
        if first and DEVANAGARI_WORD.match(was, first.start()):
            part = re.sub(r"[^\W\d_]", lambda m: m.group().upper(), part, count=1)
        cased.append(part)
    spaces = SENTENCE_END.findall(roman)
    return "".join(p + s for p, s in zip(cased, [*spaces, ""], strict=True))


def transliterate_transcript(transcript: Transcript, target: str,
                             lexicon: NameLexicon) -> Transcript:
    """The transcript in `target`'s script, segment for segment, timings unchanged (word
    timings dropped, as in a translation: the words are not the same words any more)."""
    segments = [s.model_copy(update={"text": transliterate_text(s.text, lexicon), "words": []})
                for s in transcript.segments]
    return transcript.model_copy(update={"language": target, "segments": segments,
                                         "alignment": None})
