"""translate: the final transcript into every target language, timings unchanged.

A second pass over the source-language transcript (Whisper's own translate task is never
used): one transcripts file per target language, segment for segment, each with the same
start, end, speaker and lyric flag as its source. Names and glossary terms are protected:
before translation each becomes a numbered placeholder (`[1]`), so the model never sees
(and never "translates") them, and afterwards the placeholders are put back (a name found
in Devanagari comes back as the glossary spells it). A placeholder the model dropped is
reported, and its name appended, so no name silently vanishes. A target that is another
script of a language (`hi-Latn`) is that language's version transliterated: from a Hindi
source no model is needed, or loaded. The model loads on first use, once per actor, and
serves every job; batches halve on GPU out-of-memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bolly_ray.core.languages import same_tag, transliterated_from
from bolly_ray.core.model_cache import folders_for, hub_cache
from bolly_ray.core.modules import installed
from bolly_ray.spec import (
    ComputeKind,
    GpuStageSettings,
    OptionalStageSettings,
    Resources,
    Stage,
    StageContext,
    StageResult,
    StageSpec,
)
from bolly_ray.stages.formats.glossary import Glossary
from bolly_ray.stages.formats.transcript import ChecksTranscriptInputs, Transcript, read_transcript
from bolly_ray.stages.protect import mask, unmask
from bolly_ray.stages.support.gpu_memory import with_batch_halving
from bolly_ray.stages.translators import LazyTranslator, flores_code
from bolly_ray.stages.transliterate import NameLexicon, transliterate_transcript

OUTPUT_DIR = "translations"


class TranslateSettings(OptionalStageSettings, GpuStageSettings):
    backend: Literal["nllb", "indictrans2"] = "nllb"
    model: str = Field(default="facebook/nllb-200-distilled-600M",
                       description="Hugging Face name or local folder of the model")
    batch_size: int = Field(default=16, ge=1, le=512, description="Halved on GPU OOM")
    num_beams: int = Field(default=4, ge=1, le=16)
    max_new_tokens: int = Field(default=200, ge=8, le=1024)
    protect: Literal["names", "all", "none"] = Field(
        default="all", description="Glossary entries kept as they are: names only, names "
        "and terms, or none")
    language_codes: dict[str, str] = Field(default_factory=dict, description="Extra ISO "
                                           "639-1 -> FLORES-200 codes (e.g. hi: hin_Deva)")


class TranslateStage(ChecksTranscriptInputs, Stage[TranslateSettings]):
    spec = StageSpec(
        name="translate", inputs=("transcript",), optional_inputs=("glossary",),
        outputs=("translations",), settings_model=TranslateSettings,
        job_fields=("source_language", "target_languages"), compute=ComputeKind.GPU,
        critical=False, resources=Resources(cpus=1, gpus=0.5, memory_mb=6144),
        cpu_resources=Resources(cpus=2, gpus=0, memory_mb=6144),
        image_requirements=("aksharamukha>=2.3,<3",),
        optional_requirements=("transformers>=4.40", "torch>=2.1"),
        timeout_s=3 * 3600, version="2")

    def model_id(self, settings: TranslateSettings) -> str:
        path = Path(settings.model).expanduser()
        return f"{settings.backend}:{path.resolve() if path.is_dir() else settings.model}:" \
               f"{settings.device}"

    def not_needed(self, settings: TranslateSettings,
                   job: Mapping[str, Any]) -> str | None:
        if targets_for(job.get("source_language") or "", job.get("target_languages") or []):
            return None
        return (f"nothing to translate: no target language differs from the source "
                f"({job.get('source_language')})")

    def needs_models(self, settings: TranslateSettings,
                     job: Mapping[str, Any]) -> bool:
        return bool(model_targets(job.get("source_language") or "",
                                  job.get("target_languages") or []))

    def model_folders(self, settings: TranslateSettings) -> list[Path]:
        return folders_for(settings.model, hub_cache())

    def missing_models(self, settings: TranslateSettings) -> list[str]:
        if not installed("transformers"):
            return ["translate: transformers is not installed: pip install 'bolly-ray[ml]'"]
        if Path(settings.model).expanduser().is_dir():
            return []
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(settings.model, "config.json"), str):
            return []
        return [f"translate: model {settings.model!r} is not in the local model cache: run "
                "`bolly-ray models pull JOB.json`, or set translate.model to a local folder"]

    def pull_models(self, settings: TranslateSettings,
                    job: Mapping[str, Any]) -> list[str]:
        if Path(settings.model).expanduser().is_dir() or not self.needs_models(settings, job):
            return []
        from huggingface_hub import snapshot_download

        return [f"translate: {settings.model}: {snapshot_download(settings.model)}"]

    def load_model(self, settings: TranslateSettings) -> LazyTranslator:
        return LazyTranslator(settings.backend, settings.model, settings.device)

    def run(self, ctx: StageContext[TranslateSettings], model: Any = None) -> StageResult:
        settings = ctx.settings
        transcript = read_transcript(ctx.inputs["transcript"])
        source = transcript.language or ctx.job.get("source_language") or ""
        targets = targets_for(source, ctx.job.get("target_languages") or [])
        protection = Protection.from_glossary(ctx.inputs.get("glossary"), settings.protect)
        out = ctx.out_dir / OUTPUT_DIR
        out.mkdir()
        report: dict[str, Any] = {"source": source, "targets": targets, "languages": {}}
        translator = model if model is not None else self.load_model(settings)
        versions = Versions(transcript, source, translator, protection, settings)
        for target in targets:
            version, lost = versions.get(target)
            version.write(out / f"{target}.json")
            report["languages"][target] = {
                "segments": len(version.segments), "placeholders_lost": lost,
                **({"transliterated_from": base} if (base := transliterated_from(target))
                   else {})}
        (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False)
                                         + "\n", encoding="utf-8")
        return StageResult(outputs={"translations": OUTPUT_DIR},
                           metrics={"languages": len(targets),
                                    "segments": len(transcript.segments) * len(targets),
                                    "model_used": int(getattr(translator, "loaded", True))})


def targets_for(source: str, targets: list[str]) -> list[str]:
    """The target languages that differ from the source ("hi" differs from "hi-Latn")."""
    return [t for t in dict.fromkeys(targets) if t.lower() != source.lower()]


def model_targets(source: str, targets: list[str]) -> list[str]:
    """The languages the model must translate into: each target, or the language a
    transliterated target is written from, unless that is the source itself."""
    wanted = [transliterated_from(t) or t for t in targets_for(source, targets)]
    return [t for t in dict.fromkeys(wanted) if not same_tag(t, source)]


@dataclass(frozen=True)
class Protection:
    """What is kept: glossary spellings in Latin script as written; names in Devanagari,
    in translation, and names and terms (per `protect`), in transliteration, as the
    glossary spells them. (A Hinglish word written in Devanagari is still translated.)"""

    terms: list[str]
    names: NameLexicon
    lexicon: NameLexicon

    @classmethod
    def from_glossary(cls, glossary: Path | None, protect: str) -> Protection:
        return cls(protected_terms(glossary, protect),
                   NameLexicon.from_glossary(glossary, "none" if protect == "none" else "names"),
                   NameLexicon.from_glossary(glossary, protect))

    def mask(self, text: str) -> tuple[str, dict[int, str]]:
        names = self.names.found_in(text)
        masked, found = mask(text, sorted([*self.terms, *names], key=len, reverse=True))
        return masked, {n: names.get(term, term) for n, term in found.items()}


class Versions:
    """The transcript in each language a job asks for, each made once: the source itself,
    the model's translation, or another version transliterated."""

    def __init__(self, source: Transcript, language: str, translator: Any,
                 protection: Protection, settings: TranslateSettings) -> None:
        self.source, self.language, self.translator = source, language, translator
        self.protection, self.settings = protection, settings
        self.made: dict[str, tuple[Transcript, int]] = {}

    def get(self, language: str) -> tuple[Transcript, int]:
        """The version and how many protected terms the model lost making it."""
        if same_tag(language, self.language):
            return self.source, 0
        if language not in self.made:
            base = transliterated_from(language)
            if base is None:
                self.made[language] = translate_transcript(
                    self.source, language, self.translator, self.protection, self.settings)
            else:
                version, lost = self.get(base)
                self.made[language] = (transliterate_transcript(
                    version, language, self.protection.lexicon), lost)
        return self.made[language]


def protected_terms(glossary: Path | None, protect: str) -> list[str]:
    """Terms to keep as they are, longest first (so "Raj Malhotra" wins over "Raj")."""
    if glossary is None or protect == "none":
        return []
    entries = Glossary.read(glossary).terms
    chosen = [t.preferred for t in entries if protect == "all" or t.is_name]
    return sorted(set(chosen), key=len, reverse=True)


def translate_transcript(transcript: Transcript, target: str, translator: Any,
                         protection: Protection, settings: TranslateSettings
                         ) -> tuple[Transcript, int]:
    """Each segment from its own language (a Hinglish film's English lines are in English)
    into `target`; segments already in the target stay as they are."""
    segments, lost = list(transcript.segments), 0
    for source, indices in by_language(transcript, target).items():
        masked = [protection.mask(segments[i].text) for i in indices]
        source_code = flores_code(source, settings.language_codes)
        target_code = flores_code(target, settings.language_codes)
        texts = _translate_texts(translator, [m[0] for m in masked], source_code, target_code,
                                 settings)
        for i, (_, found), text in zip(indices, masked, texts, strict=True):
            restored, missing = unmask(text, found)
            lost += missing
            segments[i] = segments[i].model_copy(update={"text": restored, "words": []})
    return transcript.model_copy(update={"language": target, "segments": segments,
                                         "alignment": None}), lost


def _translate_texts(translator: Any, texts: list[str], source_code: str, target_code: str,
                     settings: TranslateSettings) -> list[str]:
    """The texts translated, in the largest batch that fits the GPU's memory."""
    translated, _ = with_batch_halving(
        lambda size: translator.translate(texts, source_code, target_code, size,
                                          settings.num_beams, settings.max_new_tokens),
        settings.batch_size, what="translate")
    return translated


def by_language(transcript: Transcript, target: str) -> dict[str, list[int]]:
    """The indices of the segments to translate, by the language each is in."""
    groups: dict[str, list[int]] = {}
    for index, segment in enumerate(transcript.segments):
        language = segment.language or transcript.language
        if not same_tag(language, target):
            groups.setdefault(language, []).append(index)
    return groups
